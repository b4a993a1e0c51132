import { spawn } from 'node:child_process';
import { DateTime } from 'luxon';
import type { TestDatabase } from './helpers/databases.js';
import { withSampleWorld, type SampleWorld } from './helpers/sampleWorld.js';
import { activeInLedger, diffLedger, expectedFromSource } from './helpers/pipeline.js';
import { CLI, runCli } from './helpers/cli.js';
import type { Emulator } from '../src/emulator/index.js';
import { stateTables } from '../src/state/tables.js';
import { expireLeases } from './helpers/clock.js';

describe('backfill killed mid-run and run again', () => {
  let w: SampleWorld;
  let db: TestDatabase;
  let emu: Emulator;
  beforeAll(async () => {
    w = await withSampleWorld('sqlite', 'resume', {
      sample: { employees: 10, leaves: 40, overtime: 10, trips: 5, outs: 10, seed: 17, startDate: '2026-03-02', days: 20, now: DateTime.utc().minus({ hours: 1 }) },
      emulator: { strict: true, latencyMs: 60 },
      tweak: (raw) => {
        raw.feishu.concurrency = 2;
        raw.sync.lock_lease_seconds = 5;
        raw.log = { level: 'info', format: 'json' };
      },
    });
    ({ db, emu } = w);
  });
  afterAll(async () => w?.close());

  it('continues without duplicates', async () => {
    const { cfg, env, raw } = w;

    const child = spawn(process.execPath, [CLI, '--config', cfg, 'backfill', '--from', '2026-03-01', '--to', '2026-03-31'], {
      env: { PATH: process.env.PATH, TZ: 'UTC', ...env },
      stdio: 'ignore',
    });
    const exited = new Promise((r) => child.on('exit', r));
    const end = Date.now() + 30_000;
    while (Date.now() < end && emu.ledger().length < 10) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    await exited;
    const partial = emu.ledger().length;
    expect(partial).toBeGreaterThanOrEqual(10);
    const expected = await expectedFromSource(db.db);
    expect(partial).toBeLessThan(Object.values(expected).flat().length);

    // The killed process's SQLite lease runs out; then the same command finishes the job.
    expect((await expireLeases(db.db, stateTables(raw.state?.table_prefix ?? 'attendance_sync_'))).lock).toBe(1);
    const again = await runCli(['--config', cfg, 'backfill', '--from', '2026-03-01', '--to', '2026-03-31'], { env, timeoutMs: 60_000 });
    expect(again.code).toBe(0);
    expect(diffLedger(expected, activeInLedger(emu.ledger()))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });
    const keys = emu.ledger().map((e) => e.idempotentId);
    expect(new Set(keys).size).toBe(keys.length);
  }, 90_000);
});
