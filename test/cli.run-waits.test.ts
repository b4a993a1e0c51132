import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { DateTime } from 'luxon';
import YAML from 'yaml';
import { createTestDatabase, type TestDatabase } from './helpers/databases.js';
import { expectLedgerMatchesSource, prepareSample } from './helpers/pipeline.js';
import { CLI, runCli } from './helpers/cli.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { migrateLatest } from '../src/state/migrate.js';

/**
 * `run` at start-up waits for its databases (a reboot where the worker comes up before
 * PostgreSQL): one log line per attempt naming the database and why, never the password;
 * SIGINT while it waits stops it at once; once the database answers it starts and cycles.
 * `once` still fails fast.
 */

/** A port nothing listens on yet (taken, then released). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A TCP proxy from `port` to the local PostgreSQL, opened when asked. */
async function openProxy(port: number, to: { host: string; port: number }): Promise<() => Promise<void>> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    const up = net.connect(to.port, to.host);
    sockets.add(sock).add(up);
    sock.on('error', () => up.destroy());
    up.on('error', () => sock.destroy());
    sock.pipe(up).pipe(sock);
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
}

const waitFor = async (f: () => boolean, ms: number): Promise<boolean> => {
  const until = Date.now() + ms;
  while (!f() && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  return f();
};

const exited = (p: ChildProcess): Promise<number | null> => new Promise((r) => (p.exitCode !== null ? r(p.exitCode) : p.once('exit', (code) => r(code))));

describe('run waits for its databases at start-up', () => {
  let source: TestDatabase;
  let state: TestDatabase;
  let emu: Emulator;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const procs: ChildProcess[] = [];
  beforeAll(async () => {
    source = await createTestDatabase('sqlite', 'runwait');
    await prepareSample(source, { employees: 4, leaves: 5, overtime: 2, trips: 0, outs: 0, seed: 3, approvedShare: 1, startDate: '2026-03-02', days: 5, now: DateTime.utc().minus({ hours: 2 }) });
    state = await createTestDatabase('pg', 'runwait');
    await migrateLatest(state.db, 'attendance_sync_');
    emu = await startEmulator({ strict: true, rateLimit: 500 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'runwait-'));
    env = { SOURCE_DATABASE_URL: source.url, FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: emu.appId, FEISHU_APP_SECRET: emu.appSecret };
  });
  afterAll(async () => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    await emu?.close();
    await state?.drop();
    await source?.drop();
  });

  /** The configuration with the state database behind `port`, with a password in its URL. */
  function configFor(port: number, name: string): string {
    const raw = YAML.parse(fs.readFileSync('config/attendance-sync.example.sqlite.yaml', 'utf8'));
    const u = new URL(state.url);
    u.host = `127.0.0.1:${port}`;
    u.password = 'pw-never-logged';
    raw.state.url = u.toString();
    raw.sync.schedule = '*/2 * * * * *';
    raw.sync.lock_lease_seconds = 5;
    raw.feishu.retry_base_ms = 20;
    raw.log = { level: 'info', format: 'json' };
    const file = path.join(dir, name);
    fs.writeFileSync(file, YAML.stringify(raw));
    return file;
  }

  function startRun(cfg: string): { p: ChildProcess; logs: () => string } {
    let logs = '';
    const p = spawn(process.execPath, [CLI, '--config', cfg, 'run'], { env: { PATH: process.env.PATH, TZ: 'UTC', NODE_ENV: 'test', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout!.on('data', (d: Buffer) => (logs += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (logs += d.toString()));
    procs.push(p);
    return { p, logs: () => logs };
  }

  const waitLines = (logs: string) => logs.split('\n').filter((l) => l.includes('waiting for the state database'));

  it('once still fails fast (exit 1) with the state database down', async () => {
    const port = await freePort();
    const started = Date.now();
    const res = await runCli(['--config', configFor(port, 'once.yaml'), 'once'], { env, timeoutMs: 30_000 });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/state database at 127\.0\.0\.1:\d+.*ECONNREFUSED/);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('SIGINT while waiting stops it promptly', async () => {
    const port = await freePort();
    const { p, logs } = startRun(configFor(port, 'sigint.yaml'));
    expect(await waitFor(() => waitLines(logs()).length >= 1, 20_000)).toBe(true);
    const sent = Date.now();
    p.kill('SIGINT');
    const code = await exited(p);
    expect(Date.now() - sent).toBeLessThan(3_000);
    expect(code).toBe(0);
  });

  it('SIGINT while a probe waits on a host that does not answer stops it promptly', async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((sock) => void sockets.add(sock.on('error', () => undefined)));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const { p, logs } = startRun(configFor((silent.address() as net.AddressInfo).port, 'silent.yaml'));
      expect(await waitFor(() => sockets.size > 0, 20_000)).toBe(true);
      const sent = Date.now();
      p.kill('SIGINT');
      const code = await exited(p);
      expect(Date.now() - sent).toBeLessThan(3_000);
      expect(code).toBe(0);
      expect(logs()).toContain('stopped while waiting for the databases');
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it('retries with one line per attempt, then starts and cycles when the database comes up', async () => {
    const port = await freePort();
    const { p, logs } = startRun(configFor(port, 'wait.yaml'));
    let closeProxy: (() => Promise<void>) | null = null;
    try {
      expect(await waitFor(() => waitLines(logs()).length >= 2, 30_000)).toBe(true);
      expect(p.exitCode).toBeNull();
      const lines = waitLines(logs()).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines[0]).toMatchObject({ database: 'state', attempt: 1 });
      expect(lines[1]).toMatchObject({ database: 'state', attempt: 2 });
      expect(String(lines[0]!.error)).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}.*ECONNREFUSED`));
      expect(logs()).not.toContain('pw-never-logged');

      const u = new URL(state.url);
      closeProxy = await openProxy(port, { host: u.hostname, port: Number(u.port || 5432) });
      expect(await waitFor(() => /"message":"cycle finished"/.test(logs()), 40_000)).toBe(true);
      await expectLedgerMatchesSource(source, emu);
      p.kill('SIGINT');
      expect(await exited(p)).toBe(0);
      expect(logs()).not.toContain('pw-never-logged');
    } finally {
      if (p.exitCode === null) p.kill('SIGKILL');
      await closeProxy?.();
    }
  });
});
