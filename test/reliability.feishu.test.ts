import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { DateTime } from 'luxon';
import { createTestDatabase, type TestDatabase } from './helpers/databases.js';
import { activeInLedger, diffLedger, expectedFromSource, expectLedgerMatchesSource, prepareSample, sampleConfig, testPipeline } from './helpers/pipeline.js';
import { runCli } from './helpers/cli.js';
import { startEmulator, type Emulator, type EmulatorStats } from '../src/emulator/index.js';
import type { Kind } from '../src/kinds.js';
import { runCycle } from '../src/pipeline/cycle.js';
import { cancelRows, touchRows } from '../src/sample/index.js';
import { retryOperations, statusCounts } from '../src/state/outbox.js';
import { stateTables } from '../src/state/tables.js';

/*
 * What the worker does when Feishu itself misbehaves: the app's credentials stop working, a
 * user disappears, the service is down for good, and records change while their earlier
 * version is still on its way. Real databases, the emulator over real HTTP.
 */

const t = stateTables('attendance_sync_');

type SyncRow = Record<string, any>;

function logLines(text: string): Array<Record<string, any>> {
  return text
    .split('\n')
    .filter((l) => l.trim().startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, any>);
}

async function countsByStatus(db: TestDatabase): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const r of await statusCounts(db.db, t)) out[r.status] = (out[r.status] ?? 0) + r.count;
  return out;
}

/** Calls of each endpoint between two stats snapshots. */
function callsSince(before: EmulatorStats, after: EmulatorStats): EmulatorStats['calls'] {
  return {
    token: after.calls.token - before.calls.token,
    create: after.calls.create - before.calls.create,
    query: after.calls.query - before.calls.query,
    process: after.calls.process - before.calls.process,
  };
}

async function waitFor(what: () => boolean | Promise<boolean>, ms: number, stepMs = 10): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await what()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return false;
}

describe('the app secret is revoked mid-run (pg)', () => {
  let db: TestDatabase;
  let emu: Emulator;
  let dir: string;
  beforeAll(async () => {
    db = await createTestDatabase('pg', 'rel_auth');
    await prepareSample(db, { employees: 20, leaves: 160, overtime: 40, trips: 30, outs: 40, seed: 21, now: DateTime.utc().minus({ hours: 1 }) });
    emu = await startEmulator({ strict: true, rateLimit: 1000, latencyMs: 15 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rel-auth-'));
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('sending halts after a few calls, one operator error line per cycle, status shows the code, nothing dead; the restored secret drains everything once', async () => {
    const concurrency = 6;
    const config = sampleConfig(db.url, emu, (raw) => {
      raw.feishu.concurrency = concurrency;
      raw.feishu.rate_limit = 400;
    });
    // One pipeline (one client, one cached token) for the whole test: a worker that keeps running.
    const p = testPipeline(db, config);
    const original = emu.appSecret;
    const total = Object.values(await expectedFromSource(db.db)).flat().length;

    // The secret is reset in the developer console while the first sync is under way, and the
    // cached tenant token runs out (the emulator's clock jumps 3 h): every later call needs a
    // new token, which the old secret cannot get.
    const cycle = runCycle(p.deps);
    expect(await waitFor(() => emu.stats().created >= 60, 20_000)).toBe(true);
    emu.setOptions({ appSecret: 'rotated-secret-0815', clock: () => Date.now() + 3 * 3600_000 });
    const atSwitch = emu.stats();
    const first = await cycle;
    const afterFirst = emu.stats();
    const burst = callsSince(atSwitch, afterFirst);
    expect(first.outcome).toBe('partial');
    expect(first.send.halted).toBe(1);
    expect(first.send.dead + first.send.failed).toBe(0);
    expect(afterFirst.created).toBeLessThan(total);
    // Only the calls already on their way when the token died: at most one per worker.
    expect(burst.create + burst.process + burst.query).toBeLessThanOrEqual(concurrency);
    expect(burst.token).toBeLessThanOrEqual(concurrency);

    // Later cycles while the secret is still wrong: one probe each, no storm.
    const logMark = p.logs().length;
    const beforeProbe = emu.stats();
    for (let i = 0; i < 3; i++) {
      const r = await runCycle(p.deps);
      expect(r.send.halted).toBe(1);
      expect(r.send.sent).toBe(0);
    }
    const probes = callsSince(beforeProbe, emu.stats());
    expect(probes).toEqual({ token: 3, create: 0, query: 0, process: 0 });

    // The operator sees one clear line per cycle, with Feishu's code; no secret in any line.
    const lines = logLines(p.logs());
    const alerts = lines.filter((l) => /refused the app credentials/.test(l.message));
    expect(alerts).toHaveLength(4);
    expect(alerts.every((l) => l.level === 'error' && l.code === 'FEISHU_CONFIG' && l.feishuCode === 10015)).toBe(true);
    const probeErrors = logLines(p.logs().slice(logMark)).filter((l) => l.level === 'error');
    expect(probeErrors).toHaveLength(3); // one per halted cycle: the alert
    expect(p.logs()).not.toContain(original);
    expect(p.logs()).not.toContain('rotated-secret-0815');

    // Nothing was given up: no attempt counted, nothing failed or dead.
    const counts = await countsByStatus(db);
    expect(counts.dead ?? 0).toBe(0);
    expect(counts.failed ?? 0).toBe(0);
    expect(counts.sending ?? 0).toBe(0);
    expect(counts.sent).toBe(afterFirst.created);
    const held = (await db.db(t.syncRecords).where({ status: 'pending' }).whereNotNull('error_code')) as SyncRow[];
    expect(held.length).toBeGreaterThan(0);
    expect(held.length).toBeLessThanOrEqual(concurrency + 3);
    expect(held.every((r) => r.error_code === 'FEISHU_CONFIG' && Number(r.feishu_code) === 10015 && Number(r.attempts) === 0)).toBe(true);
    expect(await db.db(t.syncRecords).where('attempts', '>', 0).whereNot({ status: 'sent' })).toHaveLength(0);

    // `status --json` shows the halt and the code.
    const env = { SOURCE_DATABASE_URL: db.url, FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: emu.appId, FEISHU_APP_SECRET: original };
    const raw = YAML.parse(fs.readFileSync('config/attendance-sync.example.postgres.yaml', 'utf8'));
    raw.log = { level: 'warn', format: 'json' };
    const cfg = path.join(dir, 'config.yaml');
    fs.writeFileSync(cfg, YAML.stringify(raw));
    const res = await runCli(['--config', cfg, 'status', '--json'], { env });
    expect(res.code).toBe(0);
    const status = JSON.parse(res.stdout);
    expect(status.lastRuns[0]).toMatchObject({ type: 'cycle', outcome: 'partial' });
    expect(status.lastRuns[0].counts.halted).toBe(1);
    expect(status.latestErrors.some((e: any) => e.status === 'pending' && e.errorCode === 'FEISHU_CONFIG' && e.feishuCode === 10015)).toBe(true);
    expect(res.stdout).not.toContain(original);

    // The secret is restored: the next cycle sends everything that is due ...
    emu.setOptions({ appSecret: original });
    const restored = await runCycle(p.deps);
    expect(restored.send.halted).toBe(0);
    expect(restored.send.sent).toBeGreaterThan(0);
    // ... and the few operations that met the auth error wait out the pause (5 min), then go.
    const waiting = (await db.db(t.syncRecords).whereIn('status', ['pending', 'sending'])) as SyncRow[];
    expect(waiting.map((r) => Number(r.id)).sort()).toEqual(held.map((r) => Number(r.id)).sort());
    for (const r of waiting) {
      const pause = Number(r.next_attempt_at) - Number(r.updated_at);
      expect(pause).toBeGreaterThan(60_000);
      expect(pause).toBeLessThanOrEqual(5 * 60_000 + 1_000);
    }
    // Time passes (the pause is over): no need to wait five real minutes.
    await db.db(t.syncRecords).whereIn('id', waiting.map((r) => Number(r.id))).update({ next_attempt_at: Date.now() - 1 });
    const drained = await runCycle(p.deps);
    expect(drained.outcome).toBe('ok');
    expect(drained.outboxDepth).toBe(0);
    expect(emu.stats().created).toBe(total);
    await expectLedgerMatchesSource(db, emu);
    const final = await countsByStatus(db);
    expect(final.dead ?? 0).toBe(0);
    expect(final.failed ?? 0).toBe(0);
  });
});

describe.each(['pg', 'mysql'] as const)('a user removed from Feishu (%s)', (dialect) => {
  let db: TestDatabase;
  let emu: Emulator;
  beforeAll(async () => {
    db = await createTestDatabase(dialect, `rel_user_${dialect}`);
    await prepareSample(db, { employees: 12, leaves: 80, overtime: 30, trips: 20, outs: 30, seed: 8, now: DateTime.utc().minus({ hours: 1 }) });
    emu = await startEmulator({ strict: true, rateLimit: 1000 });
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  it("that employee's records end failed with Feishu's code; every other record syncs; retry after the fix sends them", async () => {
    const gone = 'E00007';
    const everyone = ((await db.db('employees').orderBy('id').pluck('employee_no')) as string[]).map(String);
    emu.setOptions({ users: everyone.filter((u) => u !== gone) });
    const p = testPipeline(db, sampleConfig(db.url, emu, (raw) => (raw.feishu.rate_limit = 400)));
    const expected = await expectedFromSource(db.db);
    const theirs = (k: Kind) => expected[k].filter((x) => x.startsWith(`${gone}|`));
    const theirCount = (Object.keys(expected) as Kind[]).reduce((n, k) => n + theirs(k).length, 0);
    expect(theirCount).toBeGreaterThan(0);

    const r = await runCycle(p.deps);
    expect(r.outcome).toBe('partial');
    expect(r.send.failed).toBe(theirCount);
    expect(r.send.dead).toBe(0);
    expect(r.send.halted).toBe(0);
    expect(r.outboxDepth).toBe(0);

    const failed = (await db.db(t.syncRecords).where({ status: 'failed' })) as SyncRow[];
    expect(failed).toHaveLength(theirCount);
    for (const f of failed) {
      expect(f.user_id).toBe(gone);
      expect(Number(f.feishu_code)).toBe(1220004);
      expect(f.error_code).toBe('FEISHU_USER_NOT_FOUND');
      expect(Number(f.attempts)).toBe(1);
    }
    // Everyone else is in Feishu exactly as the source says.
    const without = Object.fromEntries((Object.keys(expected) as Kind[]).map((k) => [k, expected[k].filter((x) => !x.startsWith(`${gone}|`))])) as Record<Kind, string[]>;
    expect(diffLedger(without, activeInLedger(emu.ledger()))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });
    expect(await db.db(t.syncRecords).whereIn('status', ['pending', 'sending', 'dead'])).toHaveLength(0);
    // One warning per failed record, naming it and the code.
    const warnings = logLines(p.logs()).filter((l) => /operation failed: needs attention/.test(l.message));
    expect(warnings).toHaveLength(theirCount);
    expect(warnings.every((w) => w.feishuCode === 1220004 && typeof w.sourceKey === 'string')).toBe(true);

    // A failed record is not retried by itself: the next cycle makes no call for it.
    const before = emu.stats().calls.create;
    await runCycle(p.deps);
    expect(emu.stats().calls.create).toBe(before);

    // The user is back (added to the app's scope), the operator runs `retry --status failed`.
    emu.setOptions({ users: everyone });
    expect(await retryOperations(db.db, t, { status: 'failed' })).toBe(theirCount);
    const again = await runCycle(p.deps);
    expect(again.send.sent).toBe(theirCount);
    await expectLedgerMatchesSource(db, emu);
  });
});

describe('a permanent outage (pg)', () => {
  let db: TestDatabase;
  let emu: Emulator;
  beforeAll(async () => {
    db = await createTestDatabase('pg', 'rel_outage');
    await prepareSample(db, { employees: 8, leaves: 16, overtime: 6, trips: 0, outs: 0, seed: 4, approvedShare: 1, now: DateTime.utc().minus({ hours: 1 }) });
    emu = await startEmulator({ strict: true, rateLimit: 2000, seed: 9 });
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  it('backoff grows to its cap; nothing is dead before its attempts are used; recovery drains the queue exactly once', async () => {
    const base = 100;
    const cap = 400;
    const maxAttempts = 6;
    const config = sampleConfig(db.url, emu, (raw) => {
      raw.feishu.retry_base_ms = base;
      raw.feishu.retry_max_ms = cap;
      raw.feishu.max_attempts = maxAttempts;
      raw.feishu.concurrency = 16;
      raw.feishu.rate_limit = 1000;
    });
    const p = testPipeline(db, config);
    const expected = await expectedFromSource(db.db);
    const total = Object.values(expected).flat().length;
    // Every attendance call fails: 5xx, and now and then the write lands but the reply is lost.
    emu.setOptions({ faults: { '5xx': 0.7, 'stored-then-failed': 0.3 } });

    // Watch every decision the sender writes down while the outage lasts.
    const seen = new Map<string, { attempts: number; status: string; delay: number }>();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const rows = (await db.db(t.syncRecords).where({ operation: 'create' }).select('id', 'status', 'attempts', 'next_attempt_at', 'updated_at')) as SyncRow[];
        for (const r of rows) {
          const o = { attempts: Number(r.attempts), status: String(r.status), delay: Number(r.next_attempt_at) - Number(r.updated_at) };
          seen.set(`${r.id}:${o.status}:${o.attempts}:${r.next_attempt_at}`, o);
        }
        await new Promise((res) => setTimeout(res, 15));
      }
    })();
    let cycles = 0;
    try {
      for (; cycles < 40; cycles++) {
        const r = await runCycle(p.deps);
        expect(r.send.sent).toBe(0);
        const c = await countsByStatus(db);
        if ((c.dead ?? 0) === total) break;
        await new Promise((res) => setTimeout(res, 60));
      }
    } finally {
      watching = false;
      await watcher;
    }
    expect(cycles).toBeLessThan(40);
    expect(emu.stats().faults['stored-then-failed'] ?? 0).toBeGreaterThan(0);

    const observed = [...seen.values()];
    const retries = observed.filter((o) => o.status === 'pending' && o.attempts > 0);
    // Each retry waits within [half, all] of min(cap, base · 2^(attempts−1)); never more than the cap.
    for (const o of retries) {
      const ceiling = Math.min(cap, base * 2 ** (o.attempts - 1));
      expect(o.delay).toBeLessThanOrEqual(ceiling);
      expect(o.delay).toBeGreaterThanOrEqual(ceiling / 2 - 20);
      expect(o.attempts).toBeLessThan(maxAttempts);
    }
    const maxDelay = (a: number) => Math.max(...retries.filter((o) => o.attempts === a).map((o) => o.delay));
    expect(maxDelay(1)).toBeLessThanOrEqual(base);
    expect(maxDelay(2)).toBeGreaterThan(base);
    expect(retries.filter((o) => o.attempts >= 3).length).toBeGreaterThan(0);
    expect(Math.max(...retries.map((o) => o.delay))).toBeLessThanOrEqual(cap);
    expect(Math.max(...retries.filter((o) => o.attempts >= 3).map((o) => o.delay))).toBeGreaterThan(cap / 2);
    // Dead only with every attempt used, never earlier; never more attempts than allowed.
    expect(observed.filter((o) => o.status === 'dead').every((o) => o.attempts === maxAttempts)).toBe(true);
    expect(observed.every((o) => o.attempts <= maxAttempts)).toBe(true);
    const dead = (await db.db(t.syncRecords).where({ status: 'dead' })) as SyncRow[];
    expect(dead).toHaveLength(total);
    expect(dead.every((r) => Number(r.attempts) === maxAttempts)).toBe(true);
    expect(logLines(p.logs()).filter((l) => /operation dead after its last attempt/.test(l.message))).toHaveLength(total);

    // Feishu is back; the operator queues the dead operations again (`retry --status dead`).
    emu.setOptions({ faults: {} });
    const storedDuringOutage = emu.stats().created;
    expect(await retryOperations(db.db, t, { status: 'dead' })).toBe(total);
    const r = await runCycle(p.deps);
    expect(r.outcome).toBe('ok');
    expect(r.send.sent).toBe(total);
    expect(r.outboxDepth).toBe(0);
    // Writes that landed during the outage were found by their idempotent_id, not repeated.
    expect(emu.stats().created).toBe(total);
    expect(storedDuringOutage).toBeGreaterThan(0);
    await expectLedgerMatchesSource(db, emu);
  });
});

describe('revoke-on-change under concurrency (pg)', () => {
  let db: TestDatabase;
  let emu: Emulator;
  beforeAll(async () => {
    db = await createTestDatabase('pg', 'rel_revoke');
    await prepareSample(db, { employees: 60, leaves: 820, overtime: 0, trips: 0, outs: 0, seed: 31, approvedShare: 1, days: 90, now: DateTime.utc().minus({ hours: 1 }) });
    emu = await startEmulator({ strict: true, rateLimit: 5000 });
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  it('500 edits and 200 cancellations, 100 of them while the earlier version is in flight: per record exactly one active approval, the latest; none when cancelled', async () => {
    const config = sampleConfig(db.url, emu, (raw) => {
      raw.feishu.concurrency = 100;
      raw.feishu.rate_limit = 1000;
      raw.feishu.timeout_ms = 5_000;
    });
    const p = testPipeline(db, config, 'sender-a');
    const first = await runCycle(p.deps);
    expect(first.outcome).toBe('ok');
    await expectLedgerMatchesSource(db, emu);

    const ids = (await db.db('leave_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').pluck('id')).map(Number);
    expect(ids.length).toBeGreaterThanOrEqual(700);
    const inFlight = ids.slice(0, 100);
    const inFlightEdit = inFlight.slice(0, 70);
    const inFlightCancel = inFlight.slice(70);
    const laterEdit = ids.slice(100, 530);
    const laterCancel = ids.slice(530, 700);

    // The 100: a second version, whose creates crawl (2 s each) ...
    await touchRows(db.db, 'leave_requests', inFlight, { reason: '第二版' });
    emu.setOptions({ latencyMs: 2000 });
    const createsBefore = emu.stats().calls.create;
    const sending = runCycle(p.deps);
    const v2InFlight = async () =>
      Number(((await db.db(t.syncRecords).where({ operation: 'create', status: 'sending' }).count({ n: '*' }).first()) as { n: string | number }).n);
    // (The sender pipelines: the create of the key whose revoke went first as the probe may
    // already be back; the rest are in flight together.)
    expect(await waitFor(async () => emu.stats().calls.create - createsBefore >= 99 && (await v2InFlight()) >= 99, 20_000, 5)).toBe(true);
    // They stay in flight until the planner below is done, however long it takes.
    const release = emu.holdAnswers();

    // ... and while they are in flight the source changes again: a third version or a cancellation,
    await touchRows(db.db, 'leave_requests', inFlightEdit, { reason: '第三版' });
    await cancelRows(db.db, 'leave_requests', inFlightCancel);
    // and a planner reads those rows while the earlier creates still have no answer.
    const planner = testPipeline(db, config, 'planner');
    const planned = await runCycle(planner.deps, { send: false });
    const stillInFlight = await v2InFlight();
    emu.setOptions({ latencyMs: 0 });
    release();
    expect(planned.plan.revoked).toBe(100);
    expect(planned.plan.created).toBe(70);
    expect(planned.plan.superseded).toBe(0);
    expect(stillInFlight).toBeGreaterThanOrEqual(99);
    await sending;

    // The other 600 change after that, with no delay.
    await touchRows(db.db, 'leave_requests', laterEdit, { reason: '修改后' });
    await cancelRows(db.db, 'leave_requests', laterCancel);
    for (let i = 0; i < 5; i++) {
      const r = await runCycle(p.deps);
      expect(r.send.failed + r.send.dead).toBe(0);
      if (r.outboxDepth === 0) break;
    }
    expect(await db.db(t.syncRecords).whereIn('status', ['pending', 'sending', 'failed', 'dead'])).toHaveLength(0);

    // Per source key: which approvals Feishu holds as approved.
    const creates = (await db.db(t.syncRecords).where({ kind: 'leave', operation: 'create' }).whereNotNull('idempotency_key').orderBy('id')) as SyncRow[];
    const keyOf = new Map(creates.map((c) => [String(c.idempotency_key), String(c.source_key)]));
    const newest = new Map<string, SyncRow>();
    for (const c of creates) newest.set(String(c.source_key), c);
    const active = new Map<string, Array<{ idempotentId: string; reason: unknown }>>();
    for (const e of emu.ledger()) {
      if (e.status !== 2) continue;
      const key = keyOf.get(String(e.idempotentId));
      expect(key).toBeDefined();
      const list = active.get(key!) ?? [];
      list.push({ idempotentId: String(e.idempotentId), reason: e.item.reason });
      active.set(key!, list);
    }
    const source = (await db.db('leave_requests').select('id', 'reason', 'status', 'deleted_at')) as Array<{ id: number; reason: string; status: string; deleted_at: unknown }>;
    const reasonOf = new Map(source.map((r) => [String(r.id), r.reason]));
    for (const id of [...inFlightCancel, ...laterCancel]) expect(active.get(String(id)) ?? []).toHaveLength(0);
    for (const id of ids.filter((x) => !inFlightCancel.includes(x) && !laterCancel.includes(x))) {
      const list = active.get(String(id)) ?? [];
      expect(list).toHaveLength(1);
      expect(list[0]!.idempotentId).toBe(String(newest.get(String(id))!.idempotency_key));
      expect(list[0]!.reason).toBe(reasonOf.get(String(id)));
    }
    for (const id of inFlightEdit) expect(active.get(String(id))![0]!.reason).toBe('第三版');
    for (const id of laterEdit) expect(active.get(String(id))![0]!.reason).toBe('修改后');
    // Every second version that was in flight reached Feishu and was revoked again.
    const v2 = emu.ledger().filter((e) => e.item.reason === '第二版');
    expect(v2).toHaveLength(100);
    expect(v2.every((e) => e.status === 4)).toBe(true);
    await expectLedgerMatchesSource(db, emu);
  });
});
