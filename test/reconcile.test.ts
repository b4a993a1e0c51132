import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { DateTime } from 'luxon';
import YAML from 'yaml';
import { createTestDatabase, type TestDatabase } from './helpers/databases.js';
import { activeInLedger, diffLedger, expectedFromSource, prepareSample } from './helpers/pipeline.js';
import { CLI, runCli, type CliResult } from './helpers/cli.js';
import { startEmulator, type Emulator, type LedgerEntry } from '../src/emulator/index.js';
import { idempotencyKey } from '../src/identity.js';
import { sampleNow, sqlTime } from '../src/sample/index.js';
import { stateTables } from '../src/state/tables.js';
import type { DialectName } from '../src/db/url.js';

/*
 * `reconcile` through the CLI against the emulator: every kind of drift injected the way it
 * happens (an admin withdraws or edits a record in the console, Feishu loses one, a revoke
 * that did nothing, an approval of ours the sync table does not know, a record made by hand),
 * reported, repaired through the outbox, and judged by what Feishu holds against the source.
 */

const t = stateTables('attendance_sync_');

interface World {
  db: TestDatabase;
  emu: Emulator;
  cfg: string;
  env: NodeJS.ProcessEnv;
  cli: (...args: string[]) => Promise<CliResult>;
  close: () => Promise<void>;
}

async function world(dialect: DialectName, label: string, o: { startDate: string; days: number; leaves?: number; tweak?: (raw: any) => void }): Promise<World> {
  const db = await createTestDatabase(dialect, label);
  await prepareSample(db, { employees: 8, leaves: o.leaves ?? 14, overtime: 0, trips: 0, outs: 0, seed: 11, startDate: o.startDate, days: o.days, now: DateTime.utc().minus({ hours: 2 }) });
  const emu = await startEmulator({ strict: true, rateLimit: 500 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${label}-`));
  const example = dialect === 'sqlite' ? 'config/attendance-sync.example.sqlite.yaml' : 'config/attendance-sync.example.postgres.yaml';
  const raw = YAML.parse(fs.readFileSync(example, 'utf8'));
  raw.feishu.retry_base_ms = 20;
  raw.feishu.retry_max_ms = 100;
  raw.feishu.timeout_ms = 3_000;
  raw.log = { level: 'info', format: 'json' };
  for (const k of ['overtime', 'trip', 'out']) delete raw.kinds[k];
  o.tweak?.(raw);
  const cfg = path.join(dir, 'config.yaml');
  fs.writeFileSync(cfg, YAML.stringify(raw));
  const env = { SOURCE_DATABASE_URL: db.url, FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: emu.appId, FEISHU_APP_SECRET: emu.appSecret };
  return {
    db,
    emu,
    cfg,
    env,
    cli: (...args) => runCli(['--config', cfg, ...args], { env, timeoutMs: 90_000 }),
    close: async () => {
      await emu.close();
      await db.drop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

const approved = (emu: Emulator) => emu.ledger().filter((e) => e.status === 2);

/** Feishu holds exactly the approved source rows, apart from the approvals listed (foreign ones). */
async function expectFeishuMatchesSource(w: World, except: readonly string[] = []): Promise<void> {
  const ledger = w.emu.ledger().filter((e) => !except.includes(e.approvalId));
  expect(diffLedger(await expectedFromSource(w.db.db), activeInLedger(ledger))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });
}

/** The approved ledger entry of a source key (found through the sync table's approval_id). */
async function entryOf(w: World, key: number): Promise<LedgerEntry> {
  const row = (await w.db.db(t.syncRecords).where({ kind: 'leave', source_key: String(key), operation: 'create', status: 'sent' }).orderBy('id', 'desc').first()) as { approval_id: string };
  const e = w.emu.ledger().find((x) => x.approvalId === row.approval_id);
  if (!e) throw new Error(`no ledger entry for key ${key}`);
  return e;
}

async function approvedKeys(w: World): Promise<number[]> {
  return ((await w.db.db('leave_requests').where('status', 'approved').whereNull('deleted_at').orderBy('id').pluck('id')) as Array<number | string>).map(Number);
}

const shiftHour = (wall: string, hours: number) => DateTime.fromFormat(wall, 'yyyy-MM-dd HH:mm:ss').plus({ hours }).toFormat('yyyy-MM-dd HH:mm:ss');

describe.each(['sqlite', 'pg', 'mysql'] as const)('reconcile finds and repairs every kind of drift (CLI, %s)', (dialect) => {
  let w: World;
  afterAll(async () => w?.close());

  it('reports each drift, repairs all but the foreign record, and a second run finds none', async () => {
    w = await world(dialect, `rec_${dialect}`, { startDate: '2026-03-02', days: 20 });
    const range = ['--from', '2026-03-01', '--to', '2026-03-31'];
    expect((await w.cli('once')).code).toBe(0);
    // Departed employees come back in UTC+0 with an empty time_zone: the same instants, no drift.
    const departed = approved(w.emu)[0]!.userId;
    w.emu.setOptions({ departedUsers: [departed] });
    const clean = await w.cli('reconcile', ...range);
    expect(clean.stderr).not.toMatch(/error/i);
    expect(clean.code).toBe(0);
    expect(clean.stdout).toMatch(/no drift left/);

    const [a, b, c, d] = await approvedKeys(w);
    // A: an admin withdraws it in the console; B: Feishu no longer holds it; C: an admin moves its start.
    const ea = await entryOf(w, a!);
    const eb = await entryOf(w, b!);
    const ec = await entryOf(w, c!);
    const ed = await entryOf(w, d!);
    expect(w.emu.admin.revoke(ea.approvalId)).toBe(true);
    expect(w.emu.admin.delete(eb.approvalId)).toBe(true);
    expect(w.emu.admin.edit(ec.approvalId, { start_time: shiftHour(String(ec.item.start_time), 1) })).toBe(true);
    // D: cancelled in the source and revoked, then approved again in Feishu (the revoke did nothing).
    await w.db.db('leave_requests').where({ id: d }).update({ status: 'cancelled', updated_at: sqlTime(sampleNow()) });
    expect((await w.cli('once')).code).toBe(0);
    expect(w.emu.ledger().find((e) => e.approvalId === ed.approvalId)?.status).toBe(4);
    const revived = w.emu.admin.create({ userId: ed.userId, kind: 'leave', item: { ...ed.item } });
    // Ours by namespace, unknown to the sync table (another state database, say).
    const strayKey = idempotencyKey({ namespace: 'fas', kind: 'leave', sourceKey: 'gone-999', version: 'v', generation: 0 });
    const stray = w.emu.admin.create({ userId: ed.userId, kind: 'leave', item: { ...ed.item, idempotent_id: strayKey, start_time: '2026-03-25 09:00:00', end_time: '2026-03-25 18:00:00' } });
    // Foreign: made by hand, no idempotent_id.
    const { idempotent_id: _drop, ...handMade } = ea.item;
    const foreign = w.emu.admin.create({ userId: ea.userId, kind: 'leave', item: { ...handMade, start_time: '2026-03-27 09:00:00', end_time: '2026-03-27 18:00:00' } });

    const report = await w.cli('reconcile', ...range);
    expect(report.code).toBe(1);
    const lines = report.stdout.trim().split('\n');
    const line = (type: string, needle: string) => lines.filter((l) => l.startsWith(`${type} `) && l.includes(needle));
    expect(line('revoked-in-feishu', `key=${a}`)).toHaveLength(1);
    expect(line('missing-in-feishu', `key=${b}`)).toHaveLength(1);
    expect(line('differs', `key=${c}`)).toHaveLength(1);
    expect(line('active-in-feishu', `approval=${revived}`)).toHaveLength(1);
    expect(line('active-in-feishu', `approval=${stray}`)).toHaveLength(1);
    expect(line('foreign', `approval=${foreign}`)).toHaveLength(1);
    expect(lines.at(-1)).toMatch(/5 drift .*1 foreign record\(s\) left alone.*5 drift left/);
    // Reporting changes nothing.
    expect(w.emu.ledger().find((e) => e.approvalId === ea.approvalId)?.status).toBe(4);

    const json = await w.cli('reconcile', ...range, '--json');
    expect(json.code).toBe(1);
    const doc = JSON.parse(json.stdout);
    expect(doc).toMatchObject({ from: '2026-03-01', to: '2026-03-31', kinds: ['leave'], summary: { driftLeft: 5, byType: { 'missing-in-feishu': 1, 'revoked-in-feishu': 1, 'active-in-feishu': 2, differs: 1, foreign: 1 } } });
    expect(doc.calls).toBeGreaterThan(0);
    expect(doc.drift.find((x: any) => x.type === 'foreign')).toMatchObject({ approvalId: foreign, sourceKey: null, repair: 'never' });

    const repair = await w.cli('reconcile', ...range, '--repair');
    expect(repair.stderr).not.toMatch(/"level":"error"/);
    expect(repair.code).toBe(0);
    expect(repair.stdout).toMatch(/5 repaired; no drift left/);
    // Feishu equals the source again, and the foreign record still stands, untouched.
    await expectFeishuMatchesSource(w, [foreign]);
    expect(approved(w.emu).find((e) => e.approvalId === foreign)).toBeDefined();
    expect(approved(w.emu).some((e) => e.approvalId === revived || e.approvalId === stray)).toBe(false);
    // Re-created as the next generation: a new idempotent_id, never the old one.
    const again = approved(w.emu).filter((e) => e.userId === ea.userId && e.item.start_time === ea.item.start_time && e.item.end_time === ea.item.end_time);
    expect(again).toHaveLength(1);
    expect(again[0]!.idempotentId).not.toBe(ea.idempotentId);

    const second = await w.cli('reconcile', ...range);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/0 drift; 1 foreign record\(s\) left alone.*no drift left/);
    // A later cycle sends nothing more: the sync table agrees with itself.
    const before = w.emu.stats().created + w.emu.stats().revoked;
    expect((await w.cli('once')).code).toBe(0);
    expect(w.emu.stats().created + w.emu.stats().revoked).toBe(before);
  }, 240_000);
});

describe('run reconciles on sync.reconcile_schedule (SQLite)', () => {
  let w: World;
  afterAll(async () => w?.close());

  it('an admin-revoked record is re-created by the daemon, and the drift metric counts it', async () => {
    const today = DateTime.now().setZone('Asia/Shanghai');
    w = await world('sqlite', 'rec_run', {
      startDate: today.minus({ days: 7 }).toISODate()!,
      days: 6,
      leaves: 5,
      tweak: (raw) => {
        raw.sync.schedule = '*/1 * * * * *';
        raw.sync.reconcile_schedule = '*/2 * * * * *';
        raw.sync.reconcile_window_days = 10;
        raw.metrics = { enabled: true, host: '127.0.0.1', port: 0 };
      },
    });
    expect((await w.cli('once')).code).toBe(0);
    const [a] = await approvedKeys(w);
    const ea = await entryOf(w, a!);
    w.emu.admin.revoke(ea.approvalId);

    const child = spawn(process.execPath, [CLI, '--config', w.cfg, 'run'], { env: { PATH: process.env.PATH, TZ: 'UTC', NODE_ENV: 'test', ...w.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let logs = '';
    child.stdout.on('data', (d: Buffer) => (logs += d.toString()));
    child.stderr.on('data', (d: Buffer) => (logs += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      const deadline = Date.now() + 40_000;
      const recreated = () => approved(w.emu).some((e) => e.userId === ea.userId && e.item.start_time === ea.item.start_time && e.idempotentId !== ea.idempotentId);
      while (!(recreated() && /reconcile finished/.test(logs)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      expect(recreated()).toBe(true);
      const url = /"url":"(http:\/\/[^"]+)\/metrics"/.exec(logs)?.[1];
      expect(url).toBeDefined();
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toMatch(/attendance_sync_drift_total\{kind="leave",type="revoked-in-feishu"\} [1-9]/);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    await expectFeishuMatchesSource(w);
  }, 120_000);
});

describe('reconcile stays within the monthly quota (SQLite)', () => {
  let w: World;
  afterAll(async () => w?.close());

  it('refuses to start when feishu.monthly_quota leaves fewer calls than it needs, naming the figures', async () => {
    w = await world('sqlite', 'rec_quota', { startDate: '2026-03-02', days: 20, tweak: (raw) => (raw.feishu.monthly_quota = 3) });
    expect((await w.cli('once')).code).toBe(0); // more than 3 creates: the count is past the limit
    const queriesBefore = w.emu.stats().calls.query;
    const r = await w.cli('reconcile', '--from', '2026-03-01', '--to', '2026-03-31');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/needs at least 2 query call\(s\) but only 0 of the monthly quota \(\d+ of 3 used in \d{4}-\d{2}\) are left/);
    expect(w.emu.stats().calls.query).toBe(queriesBefore);
  }, 120_000);

  it('rejects bad arguments with exit 2, naming the option', async () => {
    const r = await w.cli('reconcile', '--from', '2026-03-31', '--to', '2026-03-01');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--to: must not be before --from/);
    const k = await w.cli('reconcile', '--from', '2026-03-01', '--to', '2026-03-31', '--kinds', 'trip');
    expect(k.code).toBe(2);
    expect(k.stderr).toMatch(/--kinds: trip is not configured/);
  }, 60_000);
});
