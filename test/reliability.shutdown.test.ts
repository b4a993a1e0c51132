import fs from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { DateTime } from 'luxon';
import type { TestDatabase } from './helpers/databases.js';
import { withSampleWorld, type SampleWorld } from './helpers/sampleWorld.js';
import { expectLedgerMatchesSource } from './helpers/pipeline.js';
import { CLI } from './helpers/cli.js';
import type { Emulator } from '../src/emulator/index.js';
import { createLogger } from '../src/log/logger.js';
import { cancelRows, touchRows } from '../src/sample/index.js';
import { createLeaderLock } from '../src/state/lock.js';
import { stateTables } from '../src/state/tables.js';
import { Daemon } from '../src/worker/daemon.js';

/*
 * `run` as pm2 runs it, stopped in the middle of sending: with SIGTERM (it must let go of
 * its calls safely and exit before pm2's kill_timeout) and with SIGKILL (a crash: the next
 * worker must take back what the dead one had claimed). Every create is slowed down by the
 * emulator, so there always are calls in flight when the signal arrives. And the daemon
 * itself, stopped while it is taking the leader lock.
 */

const t = stateTables('attendance_sync_');
/** pm2 sends SIGKILL this long after SIGINT / SIGTERM (ecosystem.config.js). */
const KILL_TIMEOUT_MS = Number(/kill_timeout:\s*(\d+)/.exec(fs.readFileSync('ecosystem.config.js', 'utf8'))?.[1]);

type SyncRow = Record<string, any>;
type Worker = ChildProcess & { output: () => string; exited: Promise<number | null> };

async function waitFor(what: () => boolean | Promise<boolean>, ms: number, stepMs = 50): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await what()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return false;
}

describe('`run` stopped while it sends (pg)', () => {
  let world: SampleWorld;
  let db: TestDatabase;
  let emu: Emulator;
  let cfg: string;
  let env: NodeJS.ProcessEnv;
  const workers: Worker[] = [];

  const start = (): Worker => {
    const child = spawn(process.execPath, [CLI, '--config', cfg, 'run'], { env: { PATH: process.env.PATH, TZ: 'UTC', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const w = Object.assign(child, { output: () => text, exited });
    workers.push(w);
    return w;
  };
  const rows = async (status: string): Promise<SyncRow[]> => (await db.db(t.syncRecords).where({ status })) as SyncRow[];
  const outboxEmpty = async () => (await db.db(t.syncRecords).whereIn('status', ['pending', 'sending'])).length === 0;

  beforeAll(async () => {
    world = await withSampleWorld('pg', 'rel_shutdown', {
      sample: { employees: 20, leaves: 120, overtime: 30, trips: 20, outs: 30, seed: 17, now: DateTime.utc().minus({ hours: 1 }) },
      emulator: { strict: true, rateLimit: 1000 },
      tweak: (raw) => {
        raw.sync.schedule = '*/2 * * * * *'; // every 2 seconds (node-cron seconds field)
        raw.sync.lock_lease_seconds = 5;
        raw.feishu.concurrency = 8;
        raw.feishu.rate_limit = 200;
        raw.feishu.retry_base_ms = 20;
        raw.feishu.timeout_ms = 5_000;
        raw.log = { level: 'info', format: 'json' };
      },
    });
    ({ db, emu, cfg, env } = world);
  });
  afterAll(async () => {
    for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
    await world?.close();
  });

  it('SIGTERM mid-send: exit 0 well within kill_timeout, nothing left sending; abandoned creates that landed are revoked when their rows are cancelled', async () => {
    emu.setOptions({ latencyMs: 1500 });
    const a = start();
    // Mid-run: some creates answered, eight more on their way.
    expect(await waitFor(() => emu.ledger().length >= 16 && emu.stats().calls.create - emu.ledger().length >= 4, 30_000, 20)).toBe(true);
    const claimed = await rows('sending');
    expect(claimed.length).toBeGreaterThan(0);
    const signalledAt = Date.now();
    a.kill('SIGTERM');
    const code = await a.exited;
    const tookMs = Date.now() - signalledAt;
    expect(code).toBe(0);
    expect(KILL_TIMEOUT_MS).toBeGreaterThan(8_000); // sync.shutdown_timeout_ms, the worker's own deadline
    expect(tookMs).toBeLessThan(KILL_TIMEOUT_MS);
    expect(a.output()).toMatch(/worker stopping/);
    expect(a.output()).toMatch(/worker stopped/);
    expect(a.output()).not.toMatch(/did not finish before the shutdown deadline/);

    // Nothing is left claimed, no run is left open, the lock is free.
    expect(await rows('sending')).toHaveLength(0);
    expect(await db.db(t.runs).where({ outcome: 'running' })).toHaveLength(0);
    const claimedIds = claimed.map((r) => Number(r.id));
    const after = (await db.db(t.syncRecords).whereIn('id', claimedIds)) as SyncRow[];
    expect(after.every((r) => ['sent', 'pending'].includes(r.status))).toBe(true);
    const interrupted = after.filter((r) => r.status === 'pending' && r.error_code === 'ABORTED');
    expect(interrupted.length).toBeGreaterThan(0);

    // The emulator had those requests already: they are stored although the worker let go.
    expect(await waitFor(() => emu.inFlight() === 0, 10_000, 20)).toBe(true);
    const stored = new Set(emu.ledger().map((e) => e.idempotentId));
    const landed = interrupted.filter((r) => r.operation === 'create' && stored.has(r.idempotency_key));
    expect(landed.length).toBeGreaterThan(0);

    // Those records are cancelled or edited in the source before the worker comes back.
    const tableOf: Record<string, string> = { leave: 'leave_requests', overtime: 'overtime_requests', trip: 'trip_requests', out: 'out_requests' };
    for (const [i, r] of landed.entries()) {
      if (i % 2 === 0) await cancelRows(db.db, tableOf[r.kind]!, [Number(r.source_key)]);
      else await touchRows(db.db, tableOf[r.kind]!, [Number(r.source_key)], { reason: '停机后修改' });
    }

    emu.setOptions({ latencyMs: 0 });
    const b = start();
    expect(await waitFor(async () => /cycle finished/.test(b.output()) && (await outboxEmpty()), 30_000)).toBe(true);
    b.kill('SIGTERM');
    expect(await b.exited).toBe(0);

    await expectLedgerMatchesSource(db, emu);
    expect((await rows('dead')).length + (await rows('failed')).length).toBe(0);
  }, 60_000);

  it('SIGKILL mid-send leaves claims behind; the next worker takes them back at once and finishes without duplicates', async () => {
    const ids = (await db.db('leave_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id', 'desc').limit(40).pluck('id')).map(Number);
    await touchRows(db.db, 'leave_requests', ids, { reason: '崩溃前的修改' });
    emu.setOptions({ latencyMs: 1500 });
    const before = emu.stats().calls;
    const a = start();
    // Each edit is a revoke, then the new create: kill once creates are in flight.
    expect(await waitFor(() => emu.stats().calls.create - before.create >= 6, 30_000, 20)).toBe(true);
    a.kill('SIGKILL');
    expect(await a.exited).toBeNull();

    // The crash left operations claimed by a process that no longer exists.
    const orphaned = await rows('sending');
    expect(orphaned.length).toBeGreaterThan(0);
    const deadOwner = String(orphaned[0]!.lease_owner);
    expect(orphaned.every((r) => r.lease_owner === deadOwner && Number(r.lease_until) > Date.now())).toBe(true);

    expect(await waitFor(() => emu.inFlight() === 0, 10_000, 20)).toBe(true); // the requests the dead worker had sent are answered into the void
    // Some of those creates landed in Feishu though the dead worker never heard. Their rows are
    // cancelled before the next worker starts: it must revoke them, not just drop the creates.
    const held = new Set(emu.ledger().filter((e) => e.status === 2).map((e) => e.idempotentId));
    const landed = orphaned.filter((r) => r.operation === 'create' && held.has(r.idempotency_key)).map((r) => Number(r.source_key));
    expect(landed.length).toBeGreaterThan(0);
    await cancelRows(db.db, 'leave_requests', landed);
    emu.setOptions({ latencyMs: 0 });
    const b = start();
    // Taken back when the lock is acquired, not after the lease: then sent.
    expect(await waitFor(() => /leader lock acquired/.test(b.output()), 15_000)).toBe(true);
    expect(b.output()).toMatch(/returned operations a previous worker left in flight/);
    expect(await db.db(t.syncRecords).where({ lease_owner: deadOwner })).toHaveLength(0);
    expect(await waitFor(async () => /cycle finished/.test(b.output()) && (await outboxEmpty()), 30_000)).toBe(true);
    b.kill('SIGTERM');
    expect(await b.exited).toBe(0);

    await expectLedgerMatchesSource(db, emu);
    expect(emu.ledger().filter((e) => e.item.reason === '崩溃前的修改' && e.status === 2)).toHaveLength(ids.filter((id) => !landed.includes(id)).length);
    expect((await rows('dead')).length + (await rows('failed')).length).toBe(0);
  }, 60_000);

  it('a stop that arrives while the lock is being taken starts no cycle and leaves the lock free', async () => {
    const inner = createLeaderLock(db.db, t, { owner: 'gated-worker', leaseMs: 5_000 });
    let entered!: () => void;
    const inAcquire = new Promise<void>((r) => (entered = r));
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    // The real lock, reached a little late: the signal lands between asking and getting.
    const lock = {
      owner: inner.owner,
      async tryAcquire() {
        entered();
        await gate;
        return inner.tryAcquire();
      },
      renew: () => inner.renew(),
      release: () => inner.release(),
    };
    let cycles = 0;
    const logger = createLogger({ level: 'info', format: 'json', stream: new PassThrough() });
    const daemon = new Daemon({
      lock,
      runCycle: async () => {
        cycles++;
      },
      schedule: '* * * * * *',
      rescanSchedule: null,
      leaseMs: 5_000,
      shutdownTimeoutMs: 2_000,
      logger,
    });
    const running = daemon.start();
    await inAcquire;
    const stopped = daemon.stop('SIGTERM');
    open();
    await stopped;
    await running;
    await new Promise((r) => setTimeout(r, 1_500)); // a cron tick would have come by now
    const other = createLeaderLock(db.db, t, { owner: 'next-worker', leaseMs: 5_000 });
    let free: boolean;
    try {
      free = await other.tryAcquire();
    } finally {
      await other.release();
      await inner.release(); // a no-op unless the stopped daemon kept the lock
    }
    expect(cycles).toBe(0);
    expect(daemon.status.state).toBe('stopped');
    expect(free).toBe(true);
  });
});
