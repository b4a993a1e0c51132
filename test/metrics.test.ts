import { spawn, type ChildProcess } from 'node:child_process';
import { DateTime } from 'luxon';
import type { TestDatabase } from './helpers/databases.js';
import { withSampleWorld, type SampleWorld } from './helpers/sampleWorld.js';
import { activeInLedger, diffLedger, expectedFromSource } from './helpers/pipeline.js';
import { CLI } from './helpers/cli.js';
import type { Emulator } from '../src/emulator/index.js';
import { judgeHealth } from '../src/metrics/metrics.js';
import { watermarkLagSeconds } from '../src/pipeline/read.js';
import { sqlTime } from '../src/sample/index.js';

/** Prometheus text format → `name{labels}` → value (labels in the order the registry prints them). */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

function sumOf(m: Map<string, number>, prefix: string, filter: (series: string) => boolean = () => true): number {
  let n = 0;
  for (const [k, v] of m) if ((k === prefix || k.startsWith(`${prefix}{`)) && filter(k)) n += v;
  return n;
}

async function waitFor<T>(what: () => Promise<T | undefined> | T | undefined, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await what();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('judgeHealth', () => {
  const base = { startedAt: 0, staleAfterMs: 60_000, now: 100_000 };
  it('a standby waiting for the lock is healthy', () => {
    expect(judgeHealth({ ...base, state: 'waiting', lastGoodCycleAt: null, lastCycle: null }).ok).toBe(true);
  });
  it('a leader with a recent good cycle is healthy; a stale one is not', () => {
    const good = { at: 90_000, outcome: 'ok', halted: 0 };
    expect(judgeHealth({ ...base, state: 'leader', lastGoodCycleAt: 90_000, lastCycle: good }).ok).toBe(true);
    const stale = judgeHealth({ ...base, state: 'leader', lastGoodCycleAt: 30_000, lastCycle: { ...good, at: 30_000 } });
    expect(stale.ok).toBe(false);
    expect(String(stale.reasons)).toMatch(/no successful cycle for 70 s/);
  });
  it('a failed or halted last cycle makes the leader unhealthy at once; rejected records alone do not', () => {
    const failed = judgeHealth({ ...base, state: 'leader', lastGoodCycleAt: 95_000, lastCycle: { at: 99_000, outcome: 'failed', halted: 0, error: 'ECONNREFUSED' } });
    expect(failed.ok).toBe(false);
    expect(String(failed.reasons)).toMatch(/last cycle failed: ECONNREFUSED/);
    const halted = judgeHealth({ ...base, state: 'leader', lastGoodCycleAt: 95_000, lastCycle: { at: 99_000, outcome: 'partial', halted: 3 } });
    expect(String(halted.reasons)).toMatch(/halted/);
    expect(judgeHealth({ ...base, state: 'leader', lastGoodCycleAt: 99_000, lastCycle: { at: 99_000, outcome: 'partial', halted: 0 } }).ok).toBe(true);
  });
  it('a leader gets staleAfterMs for its first cycle', () => {
    expect(judgeHealth({ ...base, state: 'leader', startedAt: 50_000, lastGoodCycleAt: null, lastCycle: null }).ok).toBe(true);
    expect(judgeHealth({ ...base, state: 'leader', startedAt: 10_000, lastGoodCycleAt: null, lastCycle: null }).ok).toBe(false);
  });
});

describe('watermarkLagSeconds', () => {
  it('reads the source timestamp in its zone', () => {
    const now = Date.parse('2026-06-01T02:00:00Z'); // 10:00 in Shanghai
    expect(watermarkLagSeconds('2026-06-01 09:59:00.123456', 'Asia/Shanghai', now)).toBe(60);
    expect(watermarkLagSeconds('2026-06-01 01:00:00', 'UTC', now)).toBe(3600);
    expect(watermarkLagSeconds('12345', 'UTC', now)).toBeNull();
    expect(watermarkLagSeconds(null, 'UTC', now)).toBeNull();
  });

  it('a watermark ahead of the clock shows as negative lag, not as 0', () => {
    const now = Date.parse('2026-06-01T02:00:00Z');
    expect(watermarkLagSeconds('2099-01-01 00:00:00.000000', 'Asia/Shanghai', now)).toBeLessThan(-365 * 86_400);
  });
});

describe('`run` with metrics: /metrics and /healthz over HTTP', () => {
  let w: SampleWorld;
  let db: TestDatabase;
  let emu: Emulator;
  let child: ChildProcess | undefined;
  let output = '';
  beforeAll(async () => {
    w = await withSampleWorld('sqlite', 'metrics', {
      // The sample config reads updated_at as Asia/Shanghai wall time.
      sample: { employees: 10, leaves: 30, overtime: 10, trips: 6, outs: 10, seed: 5, startDate: '2026-03-02', days: 30, now: DateTime.now().setZone('Asia/Shanghai').minus({ hours: 2 }) },
      emulator: { strict: true, rateLimit: 200 },
      tweak: (raw) => {
        raw.sync.schedule = '*/2 * * * * *';
        raw.sync.lock_lease_seconds = 5;
        raw.feishu.retry_base_ms = 20;
        raw.feishu.rate_limit = 100;
        raw.feishu.monthly_quota = 100_000;
        raw.log = { level: 'info', format: 'json' };
        raw.metrics = { enabled: true, host: '127.0.0.1', port: 0 };
      },
    });
    ({ db, emu } = w);
  });
  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await w?.close();
  });

  it('counts what it synced, reports lag and stage times, and turns unhealthy when sending halts', async () => {
    const cfg = w.cfg;
    const env = { PATH: process.env.PATH, TZ: 'UTC', ...w.env };
    child = spawn(process.execPath, [CLI, '--config', cfg, 'run'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));

    const base = await waitFor(() => /"url":"(http:\/\/127\.0\.0\.1:\d+)\/metrics"/.exec(output)?.[1], 15_000);
    const expected = await expectedFromSource(db.db);
    const total = Object.values(expected).flat().length;
    // Wait for a cycle that has sent everything.
    await waitFor(() => (emu.ledger().length >= total && /"message":"cycle finished"/.test(output) ? true : undefined), 30_000);
    const health = await waitFor(async () => {
      const res = await fetch(`${base}/healthz`);
      const body = (await res.json()) as { ok: boolean; lastCycle: { outcome: string } | null };
      return res.status === 200 && body.lastCycle?.outcome === 'ok' ? body : undefined;
    }, 15_000);
    expect(health.ok).toBe(true);
    expect(diffLedger(expected, activeInLedger(emu.ledger()))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });

    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const m = parseMetrics(await res.text());
    const leaves = emu.ledger().filter((e) => e.kind === 'leave').length;
    expect(m.get('attendance_sync_records_total{kind="leave",outcome="created"}')).toBe(leaves);
    expect(sumOf(m, 'attendance_sync_records_total', (s) => s.includes('outcome="created"'))).toBe(total);
    expect(sumOf(m, 'attendance_sync_operations_total', (s) => s.includes('status="sent"'))).toBe(total);
    expect(m.get('attendance_sync_send_duration_seconds_count{operation="create"}')).toBe(total);
    expect(m.get('attendance_sync_outbox_depth')).toBe(0);
    expect(m.get('attendance_sync_oldest_pending_age_seconds')).toBe(0);
    expect(m.get('attendance_sync_leader')).toBe(1);
    expect(m.get('attendance_sync_feishu_rate_limited_total')).toBe(0);
    // The worker's count of its successful calls this month is what Feishu's quota counted.
    expect(m.get('attendance_sync_feishu_quota_used')).toBe(Object.values(emu.stats().quotaUsed).reduce((a, b) => a + b, 0));
    expect(m.get('attendance_sync_feishu_quota_used')).toBeGreaterThanOrEqual(total);
    expect(m.get('attendance_sync_feishu_quota_limit')).toBe(100_000);
    // The sample's newest change is about two hours old.
    const lag = m.get('attendance_sync_watermark_lag_seconds{kind="leave"}') ?? -1;
    expect(lag).toBeGreaterThan(3_600);
    expect(lag).toBeLessThan(3 * 3_600);
    const lastOk = m.get('attendance_sync_last_successful_cycle_timestamp_seconds') ?? 0;
    expect(Math.abs(Date.now() / 1000 - lastOk)).toBeLessThan(60);
    expect(m.get('attendance_sync_stage_seconds_total{stage="send"}')).toBeGreaterThan(0);
    expect(m.get('attendance_sync_stage_seconds_total{stage="extract"}')).toBeGreaterThan(0);
    expect(sumOf(m, 'attendance_sync_cycle_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(m.has('attendance_sync_process_resident_memory_bytes')).toBe(true);

    // Every cycle ends with one summary line carrying the same figures.
    const summary = output
      .split('\n')
      .filter((l) => l.includes('"message":"cycle finished"'))
      .map((l) => JSON.parse(l) as Record<string, any>)
      .find((l) => l.created > 0)!;
    expect(summary).toMatchObject({ outcome: 'ok', created: total, sent: total, outboxDepth: 0, oldestPendingSeconds: 0, feishu: { rateLimited: 0 } });
    expect(summary.feishu.calls).toBeGreaterThanOrEqual(total);
    expect(Object.keys(summary.timings).sort()).toEqual(['extractMs', 'mapMs', 'planMs', 'sendMs']);
    expect(summary.watermarkLagSeconds.leave).toBeGreaterThan(3_600);

    // Feishu's quota runs out: the leader halts sending and /healthz says so.
    emu.setOptions({ faults: { quota: 1 } });
    await db.db('leave_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').limit(1).update({ reason: '配额用尽', updated_at: sqlTime(DateTime.now().setZone('Asia/Shanghai')) });
    const sick = await waitFor(async () => {
      const r = await fetch(`${base}/healthz`);
      return r.status === 503 ? ((await r.json()) as { ok: boolean; reasons: string[] }) : undefined;
    }, 20_000);
    expect(sick.ok).toBe(false);
    expect(sick.reasons.join(' ')).toMatch(/halted/);
    const m2 = parseMetrics(await (await fetch(`${base}/metrics`)).text());
    expect(m2.get('attendance_sync_outbox_depth')).toBeGreaterThanOrEqual(1);

    const exited = new Promise<number | null>((r) => child!.on('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(output).not.toContain(emu.appSecret);
  }, 90_000);
});
