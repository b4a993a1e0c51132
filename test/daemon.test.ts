import { PassThrough } from 'node:stream';
import { DateTime } from 'luxon';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { expectLedgerMatchesSource, prepareSample, sampleConfig, testPipeline, type TestPipeline } from './helpers/pipeline.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { runCycle } from '../src/pipeline/cycle.js';
import { Daemon, type DaemonOptions } from '../src/worker/daemon.js';
import { createLeaderLock } from '../src/state/lock.js';
import { createLogger } from '../src/log/logger.js';
import { stateTables } from '../src/state/tables.js';

const t = stateTables('attendance_sync_');
const LEASE_MS = 1_500;

async function waitFor(what: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (what()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return what();
}

/*
 * The `run` loop (worker/daemon.ts) on a real state database, its cycles the real pipeline
 * against the emulator: a cycle at leadership and on every tick, never two at once; one leader
 * per state database and a standby that takes over; a stop that aborts the running cycle,
 * waits for it and frees the lock.
 */
describe.each(dialectsUnderTest())('daemon on %s', (dialect) => {
  let db: TestDatabase;
  let emu: Emulator;
  let p: TestPipeline;
  const logger = createLogger({ level: 'info', format: 'json', stream: new PassThrough() });
  const daemon = (owner: string, cycle: DaemonOptions['runCycle'], more: Partial<DaemonOptions> = {}) =>
    new Daemon({
      lock: createLeaderLock(db.db, t, { owner, leaseMs: LEASE_MS }),
      runCycle: cycle,
      schedule: '* * * * * *',
      rescanSchedule: null,
      leaseMs: LEASE_MS,
      shutdownTimeoutMs: 5_000,
      logger,
      ...more,
    });

  beforeAll(async () => {
    db = await createTestDatabase(dialect, `daemon_${dialect}`);
    await prepareSample(db, { employees: 4, leaves: 8, overtime: 0, trips: 0, outs: 0, seed: 41, now: DateTime.utc().minus({ hours: 1 }) });
    emu = await startEmulator({ strict: true, rateLimit: 1000 });
    p = testPipeline(
      db,
      sampleConfig(db.url, emu, (raw) => {
        for (const k of ['overtime', 'trip', 'out']) delete raw.kinds[k];
      }),
    );
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  it('runs a cycle on taking the lead and on later ticks, never two at once, passing the rescan flag', async () => {
    let running = 0;
    let most = 0;
    const seen: boolean[] = [];
    const d = daemon(
      'scheduler',
      async (signal, opts) => {
        running++;
        most = Math.max(most, running);
        seen.push(opts.rescan);
        try {
          await runCycle(p.deps, { signal, rescan: opts.rescan });
          await new Promise((r) => setTimeout(r, 1_200)); // longer than a tick: the next tick must not overlap
        } finally {
          running--;
        }
      },
      { rescanSchedule: '* * * * * *' },
    );
    const done = d.start();
    expect(await waitFor(() => seen.length >= 2, 10_000)).toBe(true);
    await d.stop('test');
    await done;
    expect(most).toBe(1);
    // The rescan tick only marks the rescan due: the next cycle carries it.
    expect(seen).toContain(true);
    await expectLedgerMatchesSource(db, emu);
  });

  it('one leader per state database; the standby takes over when the leader stops', async () => {
    const cycles: string[] = [];
    const a = daemon('leader-a', async () => void cycles.push('a'));
    const runningA = a.start();
    expect(await waitFor(() => a.status.state === 'leader', 5_000)).toBe(true);
    const b = daemon('standby-b', async () => void cycles.push('b'));
    const runningB = b.start();
    await waitFor(() => cycles.filter((c) => c === 'a').length >= 2, 5_000);
    expect(b.status.state).toBe('waiting');
    expect(cycles).not.toContain('b');

    await a.stop('test');
    await runningA;
    expect(await waitFor(() => b.status.state === 'leader' && cycles.includes('b'), LEASE_MS + 5_000)).toBe(true);
    const afterStop = cycles.lastIndexOf('a');
    expect(cycles.indexOf('b')).toBeGreaterThan(afterStop);
    await b.stop('test');
    await runningB;
  });

  it('a stop aborts the running cycle, waits for it, and leaves the lock free', async () => {
    let aborted = false;
    let finished = false;
    let started!: () => void;
    const inCycle = new Promise<void>((r) => (started = r));
    const d = daemon('stopping', async (signal) => {
      started();
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      aborted = signal.aborted;
      await new Promise((r) => setTimeout(r, 100)); // in-flight work winds down
      finished = true;
    });
    const running = d.start();
    await inCycle;
    await d.stop('SIGTERM');
    await running;
    expect(aborted).toBe(true);
    expect(finished).toBe(true);
    expect(d.status.state).toBe('stopped');
    const next = createLeaderLock(db.db, t, { owner: 'next', leaseMs: LEASE_MS });
    try {
      expect(await next.tryAcquire()).toBe(true);
    } finally {
      await next.release();
    }
  });
});
