import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DateTime } from 'luxon';
import YAML from 'yaml';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { activeInLedger, diffLedger, expectedFromSource, prepareSample } from './helpers/pipeline.js';
import { runCli } from './helpers/cli.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { cancelRows } from '../src/sample/index.js';
import { stateTables } from '../src/state/tables.js';
import { migrateLatest } from '../src/state/migrate.js';
import { ensureTenant, rebindTenant, TenantMismatchError } from '../src/state/tenant.js';

const t = stateTables('attendance_sync_');

/** Every attendance call and token fetch an emulator answered: 0 means nothing was sent to it. */
function touched(emu: Emulator): number {
  const s = emu.stats();
  return s.calls.create + s.calls.query + s.calls.process + s.calls.token + s.tokenFetches;
}

/*
 * Rehearse → go live: the state DB records its Feishu tenant at the first send. Pointed at
 * another tenant it refuses (exit 2, naming both) and sends nothing, until the operator
 * re-binds it; then everything reaches the new tenant.
 */
describe('the state database is tied to its Feishu tenant (CLI, SQLite)', () => {
  let db: TestDatabase;
  let rehearsal: Emulator;
  let live: Emulator;
  let dir: string;
  let cfg: string;
  let envA: NodeJS.ProcessEnv;
  let envB: NodeJS.ProcessEnv;
  beforeAll(async () => {
    db = await createTestDatabase('sqlite', 'tenant');
    await prepareSample(db, { employees: 8, leaves: 20, overtime: 6, trips: 4, outs: 6, seed: 12, startDate: '2026-03-02', days: 20, now: DateTime.utc().minus({ hours: 2 }) });
    rehearsal = await startEmulator({ strict: true, rateLimit: 500, appId: 'cli_rehearsal_a', appSecret: 'secret-of-rehearsal-a' });
    live = await startEmulator({ strict: true, rateLimit: 500, appId: 'cli_live_b', appSecret: 'secret-of-live-b' });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-'));
    const raw = YAML.parse(fs.readFileSync('config/attendance-sync.example.sqlite.yaml', 'utf8'));
    raw.feishu.retry_base_ms = 20;
    raw.log = { level: 'info', format: 'json' };
    cfg = path.join(dir, 'config.yaml');
    fs.writeFileSync(cfg, YAML.stringify(raw));
    envA = { SOURCE_DATABASE_URL: db.url, FEISHU_BASE_URL: rehearsal.url, FEISHU_APP_ID: rehearsal.appId, FEISHU_APP_SECRET: rehearsal.appSecret };
    envB = { SOURCE_DATABASE_URL: db.url, FEISHU_BASE_URL: live.url, FEISHU_APP_ID: live.appId, FEISHU_APP_SECRET: live.appSecret };
  });
  afterAll(async () => {
    await rehearsal?.close();
    await live?.close();
    await db?.drop();
  });

  it('rehearsal: the first send binds the state to the emulator it went to', async () => {
    const res = await runCli(['--config', cfg, 'once'], { env: envA });
    expect(res.code).toBe(0);
    expect(diffLedger(await expectedFromSource(db.db), activeInLedger(rehearsal.ledger()))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });
    expect(rehearsal.ledger().length).toBeGreaterThan(10);
    const row = await db.db(t.tenant).first();
    expect(row).toMatchObject({ app_id: 'cli_rehearsal_a', base_host: new URL(rehearsal.url).host, employee_type: 'employee_no', namespace: 'fas' });
    const check = await runCli(['--config', cfg, 'check-config', '--feishu'], { env: envA });
    expect(check.code).toBe(0);
    expect(check.stdout).toMatch(/ok\s+feishu tenant: the state belongs to app cli_rehearsal_a/);
    const status = await runCli(['--config', cfg, 'status'], { env: envA });
    expect(status.stdout).toMatch(/Feishu tenant: app cli_rehearsal_a at 127\.0\.0\.1:\d+ \(employee_type employee_no, namespace fas\), bound /);
  });

  it('pointed at another tenant, once / backfill / run exit 2 naming both and send nothing; check-config --feishu reports it', async () => {
    const a = `app cli_rehearsal_a at ${new URL(rehearsal.url).host}`;
    const b = `app cli_live_b at ${new URL(live.url).host}`;
    for (const args of [['once'], ['once', '--no-send'], ['backfill', '--from', '2026-03-01', '--to', '2026-03-31'], ['run']]) {
      const res = await runCli(['--config', cfg, ...args], { env: envB, timeoutMs: 30_000 });
      expect({ args, code: res.code }).toEqual({ args, code: 2 });
      expect(res.stderr).toContain(a);
      expect(res.stderr).toContain(b);
      expect(res.stderr).toMatch(/feishu\.base_url, feishu\.app_id differ/);
      expect(res.stderr).toMatch(/rebind-tenant --yes/);
    }
    expect(touched(live)).toBe(0);
    expect(live.ledger()).toHaveLength(0);
    const check = await runCli(['--config', cfg, 'check-config', '--feishu'], { env: envB });
    expect(check.code).toBe(2);
    expect(check.stdout).toMatch(/ERROR\s+feishu\.base_url, feishu\.app_id: the state database belongs to Feishu app cli_rehearsal_a/);
    expect(check.stdout).toContain(b);
    // Asking without --yes shows what would happen and changes nothing.
    const ask = await runCli(['--config', cfg, 'rebind-tenant'], { env: envB });
    expect(ask.code).toBe(2);
    expect(ask.stdout).toMatch(/would re-bind the state database\n\s+from app cli_rehearsal_a.*\n\s+to\s+app cli_live_b/);
    expect(ask.stdout).toMatch(/Forgets \d+ operation/);
    expect((await db.db(t.tenant).first()).app_id).toBe('cli_rehearsal_a');
    expect(Number((await db.db(t.syncRecords).count({ n: '*' }).first())!.n)).toBeGreaterThan(0);
    // check-config --feishu fetched a token to check the credentials; nothing else reached B.
    const calls = live.stats().calls;
    expect(calls.create + calls.query + calls.process).toBe(0);
  });

  it('after rebind-tenant --yes everything is sent to the new tenant, and later changes follow it there', async () => {
    const rehearsed = rehearsal.ledger().length;
    expect(Number((await db.db(t.quota).sum({ n: 'calls' }).first())!.n)).toBeGreaterThan(0);
    const rebind = await runCli(['--config', cfg, 'rebind-tenant', '--yes'], { env: envB });
    expect(rebind.code).toBe(0);
    expect(rebind.stdout).toMatch(/now bound to app cli_live_b/);
    // The rehearsal's calls were not the new tenant's quota.
    expect(await db.db(t.quota).count({ n: '*' }).first()).toMatchObject({ n: 0 });
    const once = await runCli(['--config', cfg, 'once'], { env: envB });
    expect(once.code).toBe(0);
    expect(Number((await db.db(t.quota).sum({ n: 'calls' }).first())!.n)).toBe(Object.values(live.stats().quotaUsed).reduce((a, b) => a + b, 0));
    expect(diffLedger(await expectedFromSource(db.db), activeInLedger(live.ledger()))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });
    expect(rehearsal.ledger()).toHaveLength(rehearsed); // the rehearsal tenant heard nothing more

    const approved = (await db.db('leave_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').limit(2).pluck('id')) as number[];
    await cancelRows(db.db, 'leave_requests', approved);
    expect((await runCli(['--config', cfg, 'once'], { env: envB })).code).toBe(0);
    expect(diffLedger(await expectedFromSource(db.db), activeInLedger(live.ledger()))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });
    expect(live.ledger().filter((e) => e.status === 4)).toHaveLength(2);

    const check = await runCli(['--config', cfg, 'check-config', '--feishu'], { env: envB });
    expect(check.code).toBe(0);
    expect(check.stdout).toMatch(/ok\s+feishu tenant: the state belongs to app cli_live_b/);
    // Pointed back at the rehearsal, it is the rehearsal that is refused now.
    const back = await runCli(['--config', cfg, 'once'], { env: envA });
    expect(back.code).toBe(2);
    expect(rehearsal.ledger()).toHaveLength(rehearsed);
  });

  it('a new app of the same tenant: rebind-tenant --yes --keep-state changes only the binding, nothing is sent twice', async () => {
    live.setOptions({ appId: 'cli_live_b2', appSecret: 'secret-of-live-b2' });
    const envB2 = { ...envB, FEISHU_APP_ID: 'cli_live_b2', FEISHU_APP_SECRET: 'secret-of-live-b2' };
    const creates = live.stats().calls.create;
    const refused = await runCli(['--config', cfg, 'once'], { env: envB2 });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/feishu\.app_id differ/);
    const rebind = await runCli(['--config', cfg, 'rebind-tenant', '--yes', '--keep-state'], { env: envB2 });
    expect(rebind.code).toBe(0);
    expect(rebind.stdout).toMatch(/the sync table was kept/);
    const once = await runCli(['--config', cfg, 'once'], { env: envB2 });
    expect(once.code).toBe(0);
    expect(live.stats().calls.create).toBe(creates);
    expect(diffLedger(await expectedFromSource(db.db), activeInLedger(live.ledger()))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });
  });
});

describe.each(dialectsUnderTest())('tenant binding in the state database on %s', (dialect) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase(dialect, `tenant_${dialect}`);
    await migrateLatest(db.db, 'attendance_sync_');
  });
  afterAll(async () => db?.drop());

  it('binds once, refuses another tenant, and a re-bind forgets the old state in one go', async () => {
    const a = { host: 'open.feishu.cn', appId: 'cli_a', employeeType: 'employee_no', namespace: 'fas' };
    const b = { ...a, appId: 'cli_b' };
    expect(await ensureTenant(db.db, t, a, { bind: false })).toEqual({ binding: null, boundNow: false });
    expect((await ensureTenant(db.db, t, a, { bind: true })).boundNow).toBe(true);
    expect((await ensureTenant(db.db, t, a, { bind: true })).boundNow).toBe(false);
    await expect(ensureTenant(db.db, t, b, { bind: true })).rejects.toBeInstanceOf(TenantMismatchError);
    await db.db(t.watermarks).insert({ kind: 'leave', cursor_value: 'x', cursor_key: '1', updated_at: 1 });
    await db.db(t.syncRecords).insert({ kind: 'leave', source_key: '1', version: 'v', generation: 0, operation: 'create', status: 'sent', attempts: 1, next_attempt_at: 1, created_at: 1, updated_at: 1 });
    const r = await rebindTenant(db.db, t, b, { keepState: false });
    expect(r.previous).toMatchObject(a);
    expect(r.forgotten).toEqual({ operations: 1, records: 0, watermarks: 1 });
    expect((await ensureTenant(db.db, t, b, { bind: false })).binding).toMatchObject(b);
    await expect(ensureTenant(db.db, t, a, { bind: false })).rejects.toThrow(/belongs to Feishu app cli_b at open\.feishu\.cn .* points at app cli_a at open\.feishu\.cn/);
  });
});
