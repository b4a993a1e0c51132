import { spawn } from 'node:child_process';
import { DateTime } from 'luxon';
import type { TestDatabase } from './helpers/databases.js';
import { withSampleWorld, type SampleWorld } from './helpers/sampleWorld.js';
import { CLI, runCli } from './helpers/cli.js';
import type { Emulator } from '../src/emulator/index.js';
import { stateTables } from '../src/state/tables.js';

const t = stateTables('attendance_sync_');

async function waitFor(what: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await what()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

describe('a run left running by a killed worker', () => {
  let w: SampleWorld;
  let db: TestDatabase;
  let emu: Emulator;
  let env: NodeJS.ProcessEnv;
  let cfg: string;
  beforeAll(async () => {
    w = await withSampleWorld('sqlite', 'runs_crashed', {
      sample: { employees: 5, leaves: 12, overtime: 0, trips: 0, outs: 0, seed: 5, startDate: '2026-03-02', days: 10, now: DateTime.utc().minus({ hours: 2 }) },
      // Every answer takes a second: the worker is killed in the middle of its first cycle.
      emulator: { strict: true, rateLimit: 200, latencyMs: 1_000 },
      tweak: (raw) => {
        raw.sync.lock_lease_seconds = 5;
        raw.feishu.timeout_ms = 5_000;
        raw.log = { level: 'info', format: 'json' };
      },
    });
    ({ db, emu, env, cfg } = w);
  });
  afterAll(async () => w?.close());

  it('is marked crashed by the next worker that takes the lock, and status shows it', async () => {
    const child = spawn(process.execPath, [CLI, '--config', cfg, 'run'], { env: { PATH: process.env.PATH, TZ: 'UTC', ...env }, stdio: ['ignore', 'ignore', 'ignore'] });
    const running = () => db.db(t.runs).where({ outcome: 'running' }).first('id') as Promise<{ id: number } | undefined>;
    try {
      expect(await waitFor(async () => (await running()) !== undefined && emu.stats().calls.create > 0, 30_000)).toBe(true);
    } finally {
      child.kill('SIGKILL');
    }
    await new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
    const left = (await running())!;
    expect(left).toBeDefined();

    // The killed worker's session lock is gone with it (SQLite: its lease runs out).
    emu.setOptions({ latencyMs: 0 });
    let res = await runCli(['--config', cfg, 'once'], { env });
    for (let i = 0; i < 10 && /another worker holds the lock/.test(res.stderr); i++) {
      await new Promise((r) => setTimeout(r, 1_000));
      res = await runCli(['--config', cfg, 'once'], { env });
    }
    expect(res.code).toBe(0);
    const row = (await db.db(t.runs).where({ id: left.id }).first()) as { outcome: string; finished_at: number | null; error: string | null };
    expect(row.outcome).toBe('crashed');
    expect(row.finished_at).not.toBeNull();
    expect(row.error).toMatch(/killed or crashed/);
    expect(await db.db(t.runs).where({ outcome: 'running' }).count({ n: '*' }).first()).toMatchObject({ n: 0 });
    expect(res.stderr).toMatch(/marked runs a previous worker left running as crashed/);

    const status = await runCli(['--config', cfg, 'status'], { env });
    expect(status.stdout).toMatch(new RegExp(`#${left.id} cycle .* crashed`));
  }, 90_000);
});
