import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { DateTime } from 'luxon';
import { createTestDatabase, type TestDatabase } from './helpers/databases.js';
import { withSampleWorld, type SampleWorld } from './helpers/sampleWorld.js';
import { activeInLedger, diffLedger, expectedFromSource } from './helpers/pipeline.js';
import { CLI, runCli } from './helpers/cli.js';
import type { Emulator } from '../src/emulator/index.js';
import { sampleNow, sqlTime } from '../src/sample/index.js';
import { stateTables } from '../src/state/tables.js';
import { updateOperations } from '../src/state/outbox.js';

const t = stateTables('attendance_sync_');

describe('operator workflow on SQLite through the CLI', () => {
  let w: SampleWorld;
  let db: TestDatabase;
  let emu: Emulator;
  let env: NodeJS.ProcessEnv;
  let cfg: string;
  beforeAll(async () => {
    w = await withSampleWorld('sqlite', 'workflow', {
      sample: { employees: 15, leaves: 40, overtime: 15, trips: 10, outs: 15, seed: 3, startDate: '2026-03-02', days: 30, now: DateTime.utc().minus({ hours: 2 }) },
      emulator: { strict: true, rateLimit: 200 },
      tweak: (raw) => {
        raw.sync.schedule = '*/2 * * * * *'; // every 2 seconds (node-cron seconds field)
        raw.sync.lock_lease_seconds = 5;
        raw.feishu.retry_base_ms = 20;
        raw.log = { level: 'info', format: 'json' };
        raw.feishu.rate_limit = 100;
      },
    });
    ({ db, emu, env, cfg } = w);
  });
  afterAll(async () => w?.close());

  it('preview prints payloads and writes nothing', async () => {
    const res = await runCli(['--config', cfg, 'preview', '--kind', 'leave', '--limit', '5'], { env });
    expect(res.code).toBe(0);
    const out = JSON.parse(res.stdout);
    expect(out.leave).toHaveLength(5);
    expect(out.leave.some((r: any) => r.outcome === 'valid' && r.payload.user_approval.leaves[0].uniq_id)).toBe(true);
    expect(await db.db.schema.hasTable(t.syncRecords)).toBe(true); // migrated by prepareSample
    expect(await db.db(t.syncRecords).count({ n: '*' }).first()).toMatchObject({ n: 0 });
    expect(emu.stats().calls.create).toBe(0);
  });

  it('backfill --dry-run writes and sends nothing; backfill syncs the range; a second run is a no-op', async () => {
    const dry = await runCli(['--config', cfg, 'backfill', '--from', '2026-03-01', '--to', '2026-04-30', '--dry-run'], { env });
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/dry run: nothing written, nothing sent\): read \d+, created [1-9]/);
    expect(await db.db(t.syncRecords).count({ n: '*' }).first()).toMatchObject({ n: 0 });
    expect(emu.stats().calls.create).toBe(0);

    const first = await runCli(['--config', cfg, 'backfill', '--from', '2026-03-01', '--to', '2026-04-30'], { env });
    expect(first.stderr).not.toMatch(/error/i);
    expect(first.code).toBe(0);
    expect(diffLedger(await expectedFromSource(db.db), activeInLedger(emu.ledger()))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });
    const creates = emu.stats().calls.create;
    const second = await runCli(['--config', cfg, 'backfill', '--from', '2026-03-01', '--to', '2026-04-30'], { env });
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/created 0, revoked 0/);
    expect(emu.stats().calls.create).toBe(creates);
    // --resend re-sends with the same keys: Feishu stores nothing twice
    const resend = await runCli(['--config', cfg, 'backfill', '--from', '2026-03-01', '--to', '2026-03-15', '--kinds', 'leave', '--resend'], { env });
    expect(resend.code).toBe(0);
    expect(emu.stats().calls.create).toBeGreaterThan(creates);
    expect(diffLedger(await expectedFromSource(db.db), activeInLedger(emu.ledger()))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });
  });

  it('status shows counts and runs; --json is machine-readable; retry requeues', async () => {
    const res = await runCli(['--config', cfg, 'status'], { env });
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/Sync table \(operations per kind and status\)/);
    expect(res.stdout).toMatch(/#\d+ backfill .* ok/);
    const json = JSON.parse((await runCli(['--config', cfg, 'status', '--json'], { env })).stdout);
    expect(json.counts.leave.sent).toBeGreaterThan(0);
    const one = (await db.db(t.syncRecords).where({ kind: 'leave', status: 'sent' }).first('id')) as { id: number };
    await updateOperations(db.db, t, (q) => q.where({ id: one.id }), { status: 'failed' });
    const retry = await runCli(['--config', cfg, 'retry', '--status', 'failed', '--kind', 'leave'], { env });
    expect(retry.stdout).toMatch(/^1 failed operation\(s\) queued again/);
    expect((await runCli(['--config', cfg, 'retry', '--status', 'bogus'], { env })).code).toBe(2);
  });

  it('two `run` processes on one state DB: only one sends; killing it lets the other take over', async () => {
    const start = (name: string): ChildProcess & { output: () => string } => {
      const child = spawn(process.execPath, [CLI, '--config', cfg, 'run'], { env: { PATH: process.env.PATH, TZ: 'UTC', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
      return Object.assign(child, { output: () => text, name });
    };
    const waitFor = async (what: () => boolean, ms: number) => {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        if (what()) return true;
        await new Promise((r) => setTimeout(r, 100));
      }
      return false;
    };
    const a = start('a');
    expect(await waitFor(() => /leader lock acquired/.test(a.output()), 15_000)).toBe(true);
    const b = start('b');
    // b has checked the lock once and found it taken: it says it is the standby.
    expect(await waitFor(() => /waiting for the leader lock: another worker is active \(standby\)/.test(b.output()), 15_000)).toBe(true);
    expect(b.output()).toMatch(/worker started/);
    expect(b.output()).not.toMatch(/leader lock acquired/);
    // a new change is synced by the leader
    await db.db('leave_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').limit(1).update({ reason: 'run 进程同步', updated_at: sqlTime(sampleNow()) });
    expect(await waitFor(() => emu.ledger().some((e) => e.item.reason === 'run 进程同步'), 15_000)).toBe(true);
    expect(b.output()).not.toMatch(/cycle finished/);
    // the leader dies without a word; the standby takes over within lease + poll
    a.kill('SIGKILL');
    const killedAt = Date.now();
    expect(await waitFor(() => /leader lock acquired/.test(b.output()), 20_000)).toBe(true);
    const takeover = (Date.now() - killedAt) / 1000;
    expect(takeover).toBeLessThan(5 + 2 + 3);
    // graceful stop: SIGTERM → exit 0, lock released
    const exited = new Promise<number | null>((r) => b.on('exit', (code) => r(code)));
    b.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(b.output()).toMatch(/worker stopped/);
  }, 90_000);

  it('once refuses to run while the lock is held, and a missing migration exits 2', async () => {
    const fresh = await createTestDatabase('sqlite', 'unmigrated');
    try {
      await fresh.db.raw('select 1'); // the file exists (a source must), its state tables do not
      const res = await runCli(['--config', cfg, 'once'], { env: { ...env, SOURCE_DATABASE_URL: fresh.url } });
      expect(res.code).toBe(2);
      expect(res.stderr).toMatch(/run `npx attendance-sync migrate` first/);
    } finally {
      await fresh.drop();
    }
  });
});

describe('npm run demo', () => {
  it('exits 0 on a fresh directory with the expected summary and leaves nothing running', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'demo-'));
    const started = Date.now();
    const res = await runCli(['demo', '--dir', dir], { cwd: dir, timeoutMs: 60_000 });
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/First sync: {2}read \d+, created [1-9]\d*, revoked 0/);
    expect(res.stdout).toMatch(/Second sync: read \d+, created 3, revoked 6/);
    expect(res.stdout).toMatch(/Demo finished: everything synced/);
    expect(res.stdout).toMatch(/leave\s+approved\s+\d+\s+revoked\s+5/);
    // Every time (or span) shown says its zone: UTC with Z, or Feishu's wall time with the zone's name.
    const time = '\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d(?::\\d\\d(?:\\.\\d+)?)?';
    const times = [...res.stdout.matchAll(new RegExp(`${time}(?: → ${time})?(Z|\\s+[A-Z][a-z]+/[A-Za-z_]+)?`, 'g'))];
    expect(times.length).toBeGreaterThan(10);
    expect(times.filter((m) => !m[1]).map((m) => m[0])).toEqual([]);
    // The watermarks are instants in the recent past (the sample's rows), not hours ahead.
    const marks = [...res.stdout.matchAll(/^\s+(?:leave|overtime|trip|out)\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)Z\s/gm)].map((m) => Date.parse(m[1]!.replace(' ', 'T') + 'Z'));
    expect(marks).toHaveLength(4);
    for (const t of marks) {
      expect(t).toBeLessThanOrEqual(Date.now());
      expect(t).toBeGreaterThan(started - 2 * 3600_000);
    }
    // The next steps it suggests run as written (the CLI is not on PATH).
    expect(res.stdout).toMatch(/Try `npx attendance-sync emulator` and `npx attendance-sync check-config` next\./);
    expect(res.stdout).not.toMatch(/`attendance-sync /);
    expect(Date.now() - started).toBeLessThan(60_000);
  });
});
