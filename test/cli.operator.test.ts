import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { DateTime } from 'luxon';
import YAML from 'yaml';
import { createTestDatabase, type TestDatabase } from './helpers/databases.js';
import { activeInLedger, prepareSample } from './helpers/pipeline.js';
import { CLI, runCli } from './helpers/cli.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { stateTables } from '../src/state/tables.js';
import { sampleNow, touchRows } from '../src/sample/seed.js';
import { columns, renderStatus } from '../src/state/status.js';
import { connect } from '../src/db/connect.js';
import { migrateLatest } from '../src/state/migrate.js';

const t = stateTables('attendance_sync_');

/** The SQLite example configuration with test timings; `tweak` edits the parsed YAML. */
function writeConfig(dir: string, tweak: (raw: any) => void = () => {}, name = 'config.yaml'): string {
  const raw = YAML.parse(fs.readFileSync('config/attendance-sync.example.sqlite.yaml', 'utf8'));
  raw.sync.schedule = '*/2 * * * * *';
  raw.sync.lock_lease_seconds = 5;
  raw.feishu.retry_base_ms = 20;
  raw.log = { level: 'info', format: 'json' };
  tweak(raw);
  const file = path.join(dir, name);
  fs.writeFileSync(file, YAML.stringify(raw));
  return file;
}

/** "employee|start|end" of source rows, the way the ledger helpers compare content. */
async function contentOf(db: TestDatabase, table: string, ids: readonly number[]): Promise<string[]> {
  const rows = (await db.db(`${table} as r`).join('employees as e', 'e.id', 'r.employee_id').whereIn('r.id', ids as number[]).select('e.employee_no', 'r.start_at', 'r.end_at')) as Array<{
    employee_no: string;
    start_at: string;
    end_at: string;
  }>;
  return rows.map((r) => `${r.employee_no}|${String(r.start_at).slice(0, 19)}|${String(r.end_at).slice(0, 19)}`).sort();
}

async function approvedIds(db: TestDatabase, table: string, n: number): Promise<number[]> {
  return (await db.db(table).where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').limit(n).pluck('id')).map(Number);
}

interface Setup {
  db: TestDatabase;
  emu: Emulator;
  dir: string;
  env: NodeJS.ProcessEnv;
}

async function setup(label: string, seed: Parameters<typeof prepareSample>[1], emuOpts: Parameters<typeof startEmulator>[0] = {}): Promise<Setup> {
  const db = await createTestDatabase('sqlite', label);
  await prepareSample(db, seed);
  const emu = await startEmulator({ strict: true, rateLimit: 500, ...emuOpts });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${label}-`));
  const env = { SOURCE_DATABASE_URL: db.url, FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: emu.appId, FEISHU_APP_SECRET: emu.appSecret };
  return { db, emu, dir, env };
}

async function teardown(s: Setup | undefined): Promise<void> {
  await s?.emu.close();
  await s?.db.drop();
}

const twoHoursAgo = () => DateTime.utc().minus({ hours: 2 });

describe('sync.start_from: where the first cycle starts', () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setup('start_from', { employees: 10, leaves: 30, overtime: 10, trips: 5, outs: 10, seed: 5, approvedShare: 1, startDate: '2026-03-02', days: 20, now: twoHoursAgo() });
  });
  afterAll(() => teardown(s));

  it('without it, check-config warns that the first cycle sends the whole table', async () => {
    const cfg = writeConfig(s.dir, () => {}, 'plain.yaml');
    const res = await runCli(['--config', cfg, 'check-config'], { env: s.env });
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/WARN\s+kinds\.leave: no watermark yet and no sync\.start_from: the first cycle sends all 30 row\(s\)/);
  });

  it('the first cycle sends only rows changed at or after it; check-config says how many; later changes follow', async () => {
    const [before, ...touched] = await approvedIds(s.db, 'leave_requests', 4);
    // Changed 5 minutes ago, 3 minutes before the start: inside the lookback window behind the
    // first watermark, and still history.
    await touchRows(s.db.db, 'leave_requests', [before!], { reason: '上线前的修改' }, sampleNow().minus({ minutes: 5 }));
    await touchRows(s.db.db, 'leave_requests', touched, { reason: '上线后的修改' });
    const cfg = writeConfig(s.dir, (raw) => (raw.sync.start_from = DateTime.utc().minus({ minutes: 2 }).toISO()));

    const check = await runCli(['--config', cfg, 'check-config'], { env: s.env });
    expect(check.code).toBe(0);
    expect(check.stdout).toMatch(/ok\s+kinds\.leave: the first cycle reads 3 row\(s\) changed at or after/);
    expect(check.stdout).toMatch(/ok\s+kinds\.overtime: the first cycle reads 0 row\(s\)/);

    const once = await runCli(['--config', cfg, 'once'], { env: s.env });
    expect(once.stderr).not.toMatch(/"level":"error"/);
    expect(once.code).toBe(0);
    const held = activeInLedger(s.emu.ledger());
    expect(held.leave).toEqual(await contentOf(s.db, 'leave_requests', touched));
    expect([held.overtime, held.trip, held.out]).toEqual([[], [], []]);

    // The bound was stored: a row changed after the first cycle is sent by the next one.
    const ot = await approvedIds(s.db, 'overtime_requests', 1);
    await touchRows(s.db.db, 'overtime_requests', ot, { reason: '第二次' });
    const again = await runCli(['--config', cfg, 'once'], { env: s.env });
    expect(again.code).toBe(0);
    expect(activeInLedger(s.emu.ledger()).overtime).toEqual(await contentOf(s.db, 'overtime_requests', ot));
    expect(activeInLedger(s.emu.ledger()).leave).toEqual(await contentOf(s.db, 'leave_requests', touched));
  });

  it('rejects a value that is neither now, a date nor a timestamp, naming the key', async () => {
    const cfg = writeConfig(s.dir, (raw) => (raw.sync.start_from = 'yesterday'), 'bad.yaml');
    const res = await runCli(['--config', cfg, 'check-config'], { env: s.env });
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/sync\.start_from: must be now, a date/);
  });
});

describe('a fixed mapping re-evaluates invalid records; status shows current problems only', () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setup('reeval', { employees: 8, leaves: 12, overtime: 0, trips: 0, outs: 0, seed: 9, approvedShare: 1, startDate: '2026-03-02', days: 10, now: twoHoursAgo() });
  });
  afterAll(() => teardown(s));

  it('unknown type code → invalid; the code added to the YAML → a plain `once` creates it; status forgets the problem', async () => {
    const [id] = await approvedIds(s.db, 'leave_requests', 1);
    await s.db.db('leave_types').insert({ code: 'STUDY', name_zh: '学习假', name_en: 'Study leave', unit: 'DAY' });
    await touchRows(s.db.db, 'leave_requests', [id!], { leave_type_code: 'STUDY' });
    const cfg = writeConfig(s.dir);
    const first = await runCli(['--config', cfg, 'once'], { env: s.env });
    expect(first.code).toBe(0);
    const want = await contentOf(s.db, 'leave_requests', [id!]);
    expect(activeInLedger(s.emu.ledger()).leave).not.toContain(want[0]);
    const before = JSON.parse((await runCli(['--config', cfg, 'status', '--json'], { env: s.env })).stdout);
    expect(before.counts.leave.invalid).toBe(1);
    expect(before.latestErrors.map((e: any) => e.message).join('\n')).toMatch(/unknown type code "STUDY"/);

    writeConfig(s.dir, (raw) => (raw.kinds.leave.types.STUDY = { uniq_id: 'STUDY', names: { ch: '学习假', en: 'Study leave' } }));
    const second = await runCli(['--config', cfg, 'once'], { env: s.env });
    expect(second.code).toBe(0);
    expect(activeInLedger(s.emu.ledger()).leave.filter((x) => x === want[0])).toHaveLength(1);
    const created = s.emu.ledger().find((e) => e.status === 2 && `${e.userId}|${String(e.item.start_time)}|${String(e.item.end_time)}` === want[0]);
    expect(JSON.stringify(created?.item)).toContain('STUDY');

    const after = JSON.parse((await runCli(['--config', cfg, 'status', '--json'], { env: s.env })).stdout);
    expect(after.counts.leave.invalid ?? 0).toBe(0);
    expect(after.latestErrors).toEqual([]);
    const text = (await runCli(['--config', cfg, 'status'], { env: s.env })).stdout;
    expect(text).not.toMatch(/STUDY/);

    // A third plain cycle has nothing to judge again: nothing new is sent.
    const creates = s.emu.stats().calls.create;
    expect((await runCli(['--config', cfg, 'once'], { env: s.env })).code).toBe(0);
    expect(s.emu.stats().calls.create).toBe(creates);
  });

  it('the sync table has a view with readable UTC timestamps', async () => {
    const rows = (await s.db.db(t.syncRecordsView).select('id', 'created_at', 'created_at_utc', 'sent_at', 'sent_at_utc').orderBy('id')) as any[];
    expect(rows.length).toBeGreaterThan(0);
    for (const r of rows) {
      expect(r.created_at_utc).toBe(new Date(Number(r.created_at)).toISOString());
      if (r.sent_at !== null) expect(r.sent_at_utc).toBe(new Date(Number(r.sent_at)).toISOString());
    }
  });
});

describe('status layout', () => {
  it('long keys are shortened with an ellipsis and every column stays in line', () => {
    const long = 'OA-2026-LEAVE-REQUEST-000000000000000000000000123456';
    const base = { kind: 'leave', operation: 'create', status: 'failed', attempts: 1, errorCode: null, feishuCode: 1220001, message: 'param error', at: 1_767_000_000_000 };
    const text = renderStatus({
      watermarks: [
        { kind: 'leave', cursor: '2026-03-02 10:00:00.000000', key: long, movedAt: 1_767_000_000_000, lastRescanAt: null },
        { kind: 'overtime', cursor: '2026-03-02 10:00:00.000000', key: '7', movedAt: 1_767_000_000_000, lastRescanAt: null },
      ],
      counts: {},
      oldestPending: null,
      lastRuns: [],
      latestErrors: [
        { ...base, id: 1, sourceKey: long },
        { ...base, id: 2, sourceKey: '42' },
      ],
      lock: null,
      feishu: { quota: { month: '2026-12', used: 0, limit: null } },
    } as any);
    const errors = text.split('Latest errors\n')[1]!.split('\n').filter(Boolean);
    expect(errors).toHaveLength(3);
    const at = errors.slice(1).map((l) => l.indexOf('create'));
    expect(errors[0]!.indexOf('operation')).toBe(at[0]);
    expect(new Set(at).size).toBe(1);
    expect(errors[1]).toContain('…');
    expect(errors[1]).toMatch(/OA-2026.*….*123456/);
    const marks = text.split('Watermarks\n')[1]!.split('\n\n')[0]!.split('\n');
    expect(marks).toHaveLength(3);
    expect(new Set(marks.slice(1).map((l) => l.indexOf('2025-12-29'))).size).toBe(1);
    expect(marks[1]).toContain('…');
    expect(columns(['a', 'b'], [['x'.repeat(50), 'y']], [10, 10])[1]).toBe(`  ${'x'.repeat(5)}…${'x'.repeat(4)}  y`);
  });
});

describe('latest errors', () => {
  it('a create that failed for a version since replaced by a sent one leaves the list; a failed revoke stays', async () => {
    const db = await createTestDatabase('sqlite', 'latest_errors');
    try {
      await migrateLatest(db.db, 'attendance_sync_');
      const now = Date.now();
      const op = (key: string, version: string, operation: string, status: string, at: number) => ({
        kind: 'leave', source_key: key, version, generation: 0, operation, status, attempts: 1, next_attempt_at: at, created_at: at, updated_at: at, feishu_code: status === 'sent' ? 0 : 1220001,
      });
      await db.db(t.syncRecords).insert([op('a', 'v1', 'create', 'failed', now), op('a', 'v2', 'create', 'sent', now + 1), op('b', 'v1', 'revoke', 'failed', now + 2), op('b', 'v2', 'create', 'sent', now + 3), op('c', 'v1', 'create', 'dead', now + 4)]);
      const { latestErrors } = await import('../src/state/outbox.js');
      const errors = await latestErrors(db.db, t, 10);
      expect(errors.map((e) => `${e.sourceKey}:${e.operation}:${e.status}`).sort()).toEqual(['b:revoke:failed', 'c:create:dead']);
    } finally {
      await db.drop();
    }
  });
});

describe('SQLite sources open read-only and must exist', () => {
  let dir: string;
  let emu: Emulator;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite-ro-'));
    emu = await startEmulator({ strict: true });
  });
  afterAll(() => emu?.close());

  it('a mistyped path: check-config and once exit 2 naming the path, and create nothing', async () => {
    const missing = path.join(dir, 'hr-typo.sqlite');
    const env = { SOURCE_DATABASE_URL: `sqlite:${missing}`, STATE_DATABASE_URL: `sqlite:${path.join(dir, 'state.sqlite')}`, FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: emu.appId, FEISHU_APP_SECRET: emu.appSecret };
    const cfg = writeConfig(dir);
    const check = await runCli(['--config', cfg, 'check-config'], { env });
    expect(check.code).toBe(2);
    expect(check.stdout).toContain(missing);
    expect(check.stdout).not.toMatch(/source database: connected/);
    expect(fs.existsSync(missing)).toBe(false);
    const once = await runCli(['--config', cfg, 'once'], { env });
    expect(once.code).toBe(2);
    expect(once.stderr).toContain(`the source database ${missing} does not exist`);
    expect(fs.existsSync(missing)).toBe(false);
  });

  it('a source apart from the state database is only read: its journal mode stays as its owner set it', async () => {
    const db = await createTestDatabase('sqlite', 'ro_source');
    try {
      await prepareSample(db, { employees: 5, leaves: 5, overtime: 0, trips: 0, outs: 0, seed: 2, approvedShare: 1, startDate: '2026-03-02', days: 5, now: twoHoursAgo() });
      await db.db.raw('PRAGMA journal_mode = DELETE');
      const file = db.url.slice('sqlite:'.length);
      const state = `sqlite:${path.join(dir, 'state-ro.sqlite')}`;
      const stateDb = connect(state);
      await migrateLatest(stateDb, 'attendance_sync_');
      await stateDb.destroy();
      const env = { SOURCE_DATABASE_URL: db.url, STATE_DATABASE_URL: state, FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: emu.appId, FEISHU_APP_SECRET: emu.appSecret };
      const cfg = writeConfig(dir, () => {}, 'ro.yaml');
      const once = await runCli(['--config', cfg, 'once'], { env });
      expect(once.code).toBe(0);
      expect(activeInLedger(emu.ledger()).leave.length).toBeGreaterThan(0);
      await db.db.destroy();
      // Byte 18 of a SQLite header is 2 in WAL mode, 1 in rollback-journal mode.
      expect(fs.readFileSync(file).subarray(18, 20)).toEqual(Buffer.from([1, 1]));
    } finally {
      await db.drop().catch(() => undefined);
    }
  });
});

/** A TCP server that accepts connections and never says a word: a host that does not answer. */
async function silentServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

describe('exit codes and messages', () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setup('exits', { employees: 5, leaves: 4, overtime: 0, trips: 0, outs: 0, seed: 4, approvedShare: 1, startDate: '2026-03-02', days: 5, now: twoHoursAgo() });
  });
  afterAll(() => teardown(s));

  it('a Feishu outage: once exits 1, says what was not sent, and the run is recorded partial', async () => {
    s.emu.setOptions({ faults: { '5xx': 1 } });
    try {
      const cfg = writeConfig(s.dir, (raw) => (raw.feishu.retry_base_ms = 600_000), 'outage.yaml');
      const res = await runCli(['--config', cfg, 'once'], { env: s.env });
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(/attendance-sync once: not everything planned reached Feishu: \d+ planned operation\(s\) could not be sent yet/);
      const run = (await s.db.db(t.runs).orderBy('id', 'desc').first()) as { outcome: string };
      expect(run.outcome).toBe('partial');
    } finally {
      s.emu.setOptions({ faults: {} });
      await s.db.db(t.syncRecords).where({ status: 'pending' }).update({ next_attempt_at: 0 });
    }
    const cfg = writeConfig(s.dir);
    const res = await runCli(['--config', cfg, 'once'], { env: s.env });
    expect(res.code).toBe(0);
    expect(res.stderr).not.toMatch(/attendance-sync once:/);
  });

  it('an unconfigured --kind and an unknown retry --id exit 2 with a message', async () => {
    const cfg = writeConfig(s.dir, (raw) => delete raw.kinds.out, 'no-out.yaml');
    for (const args of [
      ['preview', '--kind', 'out'],
      ['retry', '--kind', 'out'],
      ['backfill', '--from', '2026-03-01', '--to', '2026-03-31', '--kinds', 'leave,out'],
    ]) {
      const res = await runCli(['--config', cfg, ...args], { env: s.env });
      expect(res.code).toBe(2);
      expect(res.stderr).toMatch(/out is not configured and enabled/);
    }
    const res = await runCli(['--config', cfg, 'retry', '--id', '987654'], { env: s.env });
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/--id: no operation for source key "987654"/);
  });

  it('a missing environment variable is named, not redacted', async () => {
    const cfg = writeConfig(s.dir);
    const env = { ...s.env };
    delete env.FEISHU_APP_SECRET;
    const res = await runCli(['--config', cfg, 'once'], { env });
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/feishu\.app_secret: environment variable FEISHU_APP_SECRET is not set/);
    expect(res.stderr).not.toMatch(/REDACTED/);
  });

  it('a database host that does not answer: within seconds, naming the database, host and port', async () => {
    const silent = await silentServer();
    try {
      const cfg = writeConfig(s.dir, () => {}, 'silent.yaml');
      const state = `sqlite:${path.join(s.dir, 'silent-state.sqlite')}`;
      const stateDb = connect(state);
      await migrateLatest(stateDb, 'attendance_sync_');
      await stateDb.destroy();
      const started = Date.now();
      const res = await runCli(['--config', cfg, 'once'], { env: { ...s.env, SOURCE_DATABASE_URL: `postgres://hr:pw@127.0.0.1:${silent.port}/hr`, STATE_DATABASE_URL: state } });
      const elapsed = Date.now() - started;
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(new RegExp(`cannot connect to the source database at 127\\.0\\.0\\.1:${silent.port}.*did not answer within 5 s`));
      expect(res.stderr).not.toMatch(/pool is probably full/);
      expect(elapsed).toBeLessThan(9_500);
    } finally {
      await silent.close();
    }
  });

  it('connection refused says which database is down', async () => {
    const cfg = writeConfig(s.dir, () => {}, 'refused.yaml');
    const stateFile = `sqlite:${path.join(s.dir, 'refused-state.sqlite')}`;
    const stateDb = connect(stateFile);
    await migrateLatest(stateDb, 'attendance_sync_');
    await stateDb.destroy();
    const source = await runCli(['--config', cfg, 'once'], { env: { ...s.env, SOURCE_DATABASE_URL: 'postgres://hr:pw@127.0.0.1:1/hr', STATE_DATABASE_URL: stateFile } });
    expect(source.code).toBe(1);
    expect(source.stderr).toMatch(/the cycle failed: .*cannot connect to the source database at 127\.0\.0\.1:1 .*ECONNREFUSED/);
    const state = await runCli(['--config', cfg, 'once'], { env: { ...s.env, STATE_DATABASE_URL: 'postgres://st:pw@127.0.0.1:1/state' } });
    expect(state.code).toBe(1);
    expect(state.stderr).toMatch(/cannot connect to the state database at 127\.0\.0\.1:1 .*ECONNREFUSED/);
  });

  it('the terminal `cycle finished` line is short; JSON keeps the whole object', async () => {
    const pretty = writeConfig(s.dir, (raw) => (raw.log = { level: 'info', format: 'pretty' }), 'pretty.yaml');
    const res = await runCli(['--config', pretty, 'once'], { env: s.env });
    expect(res.code).toBe(0);
    const line = res.stderr.split('\n').find((l) => l.includes('cycle finished'))!;
    expect(line).toMatch(/cycle finished {2}ok in \d+\.\ds: read \d+, created \d+/);
    expect(line.length).toBeLessThan(200);
    const json = await runCli(['--config', writeConfig(s.dir), 'once'], { env: s.env });
    const obj = JSON.parse(json.stderr.split('\n').find((l) => l.includes('"cycle finished"'))!);
    expect(obj).toMatchObject({ outcome: 'ok', timings: expect.any(Object), feishu: expect.any(Object), kinds: expect.any(Object) });
  });

  it('subcommand --help shows the global --config, the exit codes and an example', async () => {
    for (const sub of ['once', 'retry', 'preview', 'status']) {
      const res = await runCli([sub, '--help']);
      expect(res.code).toBe(0);
      expect(res.stdout).toMatch(/-c, --config <file>/);
      expect(res.stdout).toMatch(/Exit codes: 0 ok, 1 runtime failure.*2 usage or configuration error/);
      expect(res.stdout).toMatch(new RegExp(`Examples?:\\n\\s+\\$ npx attendance-sync ${sub}`));
    }
  });

  it('a standby says it is waiting for the lock, once', async () => {
    const cfg = writeConfig(s.dir, () => {}, 'standby.yaml');
    const procs: ChildProcess[] = [];
    const logs = ['', ''];
    const start = (i: number) => {
      const p = spawn(process.execPath, [CLI, '--config', cfg, 'run'], { env: { PATH: process.env.PATH, TZ: 'UTC', NODE_ENV: 'test', ...s.env }, stdio: ['ignore', 'ignore', 'pipe'] });
      p.stderr!.on('data', (d: Buffer) => (logs[i] += d.toString()));
      procs.push(p);
    };
    const waitFor = async (f: () => boolean, ms: number) => {
      const until = Date.now() + ms;
      while (!f() && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
      return f();
    };
    try {
      start(0);
      expect(await waitFor(() => logs[0]!.includes('leader lock acquired'), 20_000)).toBe(true);
      start(1);
      expect(await waitFor(() => logs[1]!.includes('waiting for the leader lock'), 20_000)).toBe(true);
      // Several lock checks later (every lease / 3 ≈ 1.7 s), still one line.
      await new Promise((r) => setTimeout(r, 6_000));
      expect(logs[1]!.match(/waiting for the leader lock/g)).toHaveLength(1);
      expect(logs[1]).not.toMatch(/leader lock acquired/);
    } finally {
      for (const p of procs) p.kill('SIGTERM');
      await Promise.all(procs.map((p) => new Promise((r) => (p.exitCode !== null ? r(null) : p.once('exit', r)))));
    }
  }, 60_000);
});
