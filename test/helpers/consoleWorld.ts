import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DateTime } from 'luxon';
import YAML from 'yaml';
import { createTestDatabase, type TestDatabase } from './databases.js';
import { prepareSample } from './pipeline.js';
import { CLI, runCli, type CliResult } from './cli.js';
import { startEmulator, type Emulator } from '../../src/emulator/index.js';
import { sampleNow, sqlTime } from '../../src/sample/index.js';

/**
 * A SQLite sample HR database (leave only), the emulator, and `run` as a real CLI process
 * with the metrics listener (and so the console) on a free port. Some employees are out of
 * the app's scope at first: their leaves are refused with 1220004 and end `failed`.
 */
export interface ConsoleWorld {
  db: TestDatabase;
  emu: Emulator;
  /** The console's base URL (http://127.0.0.1:PORT). */
  base: string;
  /** Employees refused at first. */
  refused: string[];
  everyone: string[];
  cli: (...args: string[]) => Promise<CliResult>;
  output: () => string;
  /** Wait until `what` gives a value (polled every 100 ms). */
  waitFor: <T>(what: () => Promise<T | undefined> | T | undefined, ms?: number) => Promise<T>;
  /** Wait for `n` more "cycle finished" lines. */
  cycles: (n?: number) => Promise<void>;
  moveLeave: (id: number, days: number) => Promise<void>;
  close: () => Promise<void>;
}

export async function waitFor<T>(what: () => Promise<T | undefined> | T | undefined, ms = 30_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await what();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function consoleWorld(label: string, o: { token?: string; refuse?: number } = {}): Promise<ConsoleWorld> {
  const db = await createTestDatabase('sqlite', label);
  await prepareSample(db, { employees: 8, leaves: 14, seed: 5, startDate: '2026-03-02', days: 20, overtime: 0, trips: 0, outs: 0, now: DateTime.utc().minus({ hours: 2 }) });
  const everyone = ((await db.db('employees').orderBy('id').pluck('employee_no')) as string[]).map(String);
  const refused = everyone.slice(0, o.refuse ?? 2);
  const emu = await startEmulator({ strict: true, rateLimit: 500, users: everyone.filter((u) => !refused.includes(u)) });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${label}-`));
  const raw = YAML.parse(fs.readFileSync('config/attendance-sync.example.sqlite.yaml', 'utf8'));
  raw.feishu.retry_base_ms = 20;
  raw.feishu.retry_max_ms = 100;
  raw.feishu.timeout_ms = 3_000;
  raw.feishu.monthly_quota = 10_000;
  raw.sync.schedule = '*/1 * * * * *';
  raw.sync.lock_lease_seconds = 5;
  raw.log = { level: 'info', format: 'json' };
  raw.metrics = { enabled: true, host: '127.0.0.1', port: 0 };
  for (const k of ['overtime', 'trip', 'out']) delete raw.kinds[k];
  const cfg = path.join(dir, 'config.yaml');
  fs.writeFileSync(cfg, YAML.stringify(raw));
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    TZ: 'UTC',
    NODE_ENV: 'test',
    SOURCE_DATABASE_URL: db.url,
    FEISHU_BASE_URL: emu.url,
    FEISHU_APP_ID: emu.appId,
    FEISHU_APP_SECRET: emu.appSecret,
    ...(o.token ? { ATTENDANCE_SYNC_CONSOLE_TOKEN: o.token } : {}),
  };
  const migrated = await runCli(['--config', cfg, 'migrate'], { env });
  if (migrated.code !== 0) throw new Error(`migrate failed: ${migrated.stderr}`);
  let output = '';
  const child: ChildProcess = spawn(process.execPath, [CLI, '--config', cfg, 'run'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const base = await waitFor(() => /"url":"(http:\/\/127\.0\.0\.1:\d+)\/metrics"/.exec(output)?.[1], 20_000);
  const finished = () => output.split('"message":"cycle finished"').length - 1;
  return {
    db,
    emu,
    base,
    refused,
    everyone,
    cli: (...args) => runCli(['--config', cfg, ...args], { env, timeoutMs: 60_000 }),
    output: () => output,
    waitFor,
    cycles: async (n = 1) => {
      const target = finished() + n;
      await waitFor(() => (finished() >= target ? true : undefined), 30_000);
    },
    moveLeave: async (id, days) => {
      const r = (await db.db('leave_requests').where({ id }).first()) as { start_at: string; end_at: string };
      const shift = (v: string) => sqlTime(DateTime.fromSQL(String(v)).plus({ days }));
      await db.db('leave_requests').where({ id }).update({ start_at: shift(r.start_at), end_at: shift(r.end_at), updated_at: sqlTime(sampleNow()) });
    },
    close: async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => {
          const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
          child.once('exit', () => r(clearTimeout(t)));
        });
      }
      await emu.close();
      await db.drop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
