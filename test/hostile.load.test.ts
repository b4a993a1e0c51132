import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import YAML from 'yaml';
import type { Knex } from 'knex';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { baseRawConfig } from './helpers/config.js';
import { prepareSample } from './helpers/pipeline.js';
import { CLI } from './helpers/cli.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { dialectFor } from '../src/db/dialect.js';
import { migrateLatest } from '../src/state/migrate.js';
import { createLeaderLock } from '../src/state/lock.js';
import { stateTables } from '../src/state/tables.js';
import { MAPPING_LIMITS } from '../src/mapping/limits.js';

/*
 * Hostile data under the deployed heap: the CLI as pm2 starts it (ecosystem.config.js
 * node_args), a preload that records the child's peak RSS and how late a 50 ms interval
 * fired, and the end effect in the emulator and the sync table.
 */

const t = stateTables('attendance_sync_');
const MB = 2 ** 20;

interface Probe {
  maxRssMb: number;
  ticks: number;
  maxDelayMs: number;
  wallMs: number;
  /** [when the late tick fired (epoch ms), how late (ms)] for ticks more than 100 ms late. */
  gaps: Array<[number, number]>;
  /** When each tick fired (epoch ms). */
  times: number[];
}

/** The cycle's span, from its summary line (JSON logs). */
function cycleSpan(stderr: string): { from: number; to: number } {
  const line = stderr.split('\n').find((l) => l.includes('"cycle finished"'));
  if (!line) throw new Error(`no cycle summary in: ${stderr.slice(-2000)}`);
  const j = JSON.parse(line) as { durationMs: number; timestamp: string };
  const to = Date.parse(j.timestamp);
  return { from: to - j.durationMs, to };
}

/** How late the timer fired at worst while the cycle ran (a late tick measures the gap before it). */
function worstDelayDuring(p: Probe, span: { from: number; to: number }): number {
  return Math.max(0, ...p.gaps.filter(([at, delay]) => at - delay > span.from && at - delay < span.to).map(([, d]) => d));
}

let deployedArgs: string[] = [];
let probeFile = '';
let dir = '';

beforeAll(async () => {
  const eco = (await import(path.resolve('ecosystem.config.js'))) as { apps: Array<{ node_args?: string[] }> };
  deployedArgs = eco.apps[0]?.node_args ?? [];
  expect(deployedArgs.join(' ')).toMatch(/--max-old-space-size=\d+/);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hostile-'));
  probeFile = path.join(dir, 'probe.cjs');
  fs.writeFileSync(
    probeFile,
    `const fs = require('fs');
const t0 = Date.now();
let last = t0, ticks = 0, maxDelay = 0;
const gaps = [], times = [];
setInterval(() => {
  const now = Date.now(), delay = now - last - 50;
  maxDelay = Math.max(maxDelay, delay);
  if (delay > 100) gaps.push([now, delay]);
  last = now;
  ticks++;
  times.push(now);
}, 50).unref();
process.on('exit', () => fs.writeFileSync(process.env.PROBE_OUT, JSON.stringify({ maxRssMb: process.resourceUsage().maxRSS / 1024, ticks, maxDelayMs: maxDelay, wallMs: Date.now() - t0, gaps, times })));
`,
  );
});

afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function spawnCli(args: string[], env: NodeJS.ProcessEnv, out: string): ChildProcess {
  return spawn(process.execPath, [...deployedArgs, '--require', probeFile, CLI, ...args], {
    env: { PATH: process.env.PATH, TZ: 'UTC', NODE_ENV: 'test', PROBE_OUT: out, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

async function runProbed(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 240_000): Promise<{ code: number | null; stderr: string; probe: Probe }> {
  const out = path.join(dir, `probe-${Math.random().toString(36).slice(2)}.json`);
  const child = spawnCli(args, env, out);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout!.resume();
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  const probe = fs.existsSync(out) ? (JSON.parse(fs.readFileSync(out, 'utf8')) as Probe) : { maxRssMb: NaN, ticks: 0, maxDelayMs: NaN, wallMs: NaN, gaps: [], times: [] };
  return { code, stderr, probe };
}

function writeConfig(name: string, raw: Record<string, any>): string {
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(file, YAML.stringify(raw));
  return file;
}

/** A value of `bytes` ASCII characters made by the database itself (nothing this large crosses the wire). */
function repeatSql(db: Knex, ch: string, bytes: number): string {
  const d = dialectFor(db).name;
  if (d === 'pg') return `repeat('${ch}', ${bytes})`;
  if (d === 'mysql') return `REPEAT('${ch}', ${bytes})`;
  return `replace(hex(zeroblob(${bytes / 2})), '0', '${ch}')`;
}

describe.each(dialectsUnderTest())('hostile data under the deployed node arguments on %s', (dialect) => {
  let db: TestDatabase;
  let emu: Emulator;
  beforeAll(async () => {
    db = await createTestDatabase(dialect, `hostile_${dialect}`);
    emu = await startEmulator({ strict: true, rateLimit: 500 });
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  it('30 rows with an unused 10 MB column sync from a table and from a query; a 10 MB reason is cut, a 300 KB type code is invalid', async () => {
    await db.db.schema.createTable('wide_leave', (tb) => {
      tb.integer('id').primary();
      tb.string('employee_no', 20).notNullable();
      tb.text('type_code', 'longtext').notNullable();
      tb.string('start_at', 19).notNullable();
      tb.string('end_at', 19).notNullable();
      tb.text('reason', 'longtext').nullable();
      tb.string('status', 16).notNullable();
      tb.string('updated_at', 26).notNullable();
      tb.text('attachment', 'longtext').nullable();
      tb.index(['updated_at', 'id']);
    });
    const rows = Array.from({ length: 32 }, (_, i) => {
      const day = String(1 + i).padStart(2, '0');
      return { id: i + 1, employee_no: `E${String(1 + (i % 9)).padStart(5, '0')}`, type_code: 'ANNUAL', start_at: `2026-05-${day} 09:00:00`, end_at: `2026-05-${day} 18:00:00`, reason: '年假', status: 'approved', updated_at: `2026-05-01 08:00:${String(i).padStart(2, '0')}.000000` };
    });
    await db.db('wide_leave').insert(rows);
    // Unmapped and wide on every row: 320 MB in all, more than the whole heap.
    await db.db.raw(`UPDATE wide_leave SET attachment = ${repeatSql(db.db, 'x', 10 * MB)} WHERE id <= 30`);
    await db.db.raw(`UPDATE wide_leave SET reason = ${repeatSql(db.db, 'y', 10 * MB)} WHERE id = 31`);
    await db.db.raw(`UPDATE wide_leave SET type_code = ${repeatSql(db.db, 'z', 300 * 1024)} WHERE id = 32`);
    await migrateLatest(db.db, 'attendance_sync_');

    const raw = baseRawConfig();
    raw.log = { level: 'warn', format: 'json' };
    const leave = raw.kinds.leave;
    leave.source = { table: 'wide_leave' };
    delete leave.deleted;
    leave.status = { column: 'status', approved: ['approved'] };
    leave.fields = { user_id: 'employee_no', start_time: 'start_at', end_time: 'start_at', type: 'type_code', unit: { value: 1 }, reason: { column: 'reason', default: '无' } };
    leave.fields.end_time = 'end_at';
    raw.kinds.out = { ...structuredClone(leave), source: { query: 'SELECT * FROM wide_leave' } };
    const cfg = writeConfig(`wide-${dialect}`, raw);
    const env = { SOURCE_DATABASE_URL: db.url, FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: emu.appId, FEISHU_APP_SECRET: emu.appSecret };

    const res = await runProbed(['--config', cfg, 'once'], env);
    process.stdout.write(`wide rows on ${dialect}: exit ${res.code}, peak RSS ${Math.round(res.probe.maxRssMb)} MB\n`);
    expect(res.stderr).not.toMatch(/heap out of memory/i);
    expect(res.code).toBe(0);
    for (const kind of ['leave', 'out'] as const) {
      const held = emu.ledger().filter((e) => e.kind === kind && e.status === 2);
      const want = rows.slice(0, 31).map((r) => `${r.employee_no}|${r.start_at}|${r.end_at}`).sort();
      expect(held.map((e) => `${e.userId}|${String(e.item.start_time)}|${String(e.item.end_time)}`).sort()).toEqual(want);
      const long = held.find((e) => e.item.start_time === '2026-05-31 09:00:00')!;
      expect(Array.from(String(long.item.reason)).length).toBeLessThanOrEqual(MAPPING_LIMITS.maxTextChars);
      expect(String(long.item.reason)).toMatch(/^y+/);
      const bad = (await db.db(t.syncRecords).where({ kind, source_key: '32' }).first()) as { status: string; reasons: string };
      expect(bad.status).toBe('invalid');
      expect(bad.reasons).toMatch(/fields\.type \(column type_code\): holds 307200 bytes, more than the \d+ a mapped value may have/);
    }
  }, 300_000);

  it('20,000 invalid rows: once completes, each row recorded and logged once, peak RSS bounded; a 50 ms timer keeps firing', async () => {
    const N = 20_000;
    const own = await createTestDatabase(dialect, `hostile_invalid_${dialect}`);
    try {
      await invalidRows(own, N, dialect);
    } finally {
      await own.drop();
    }
  }, 300_000);

  async function invalidRows(db: TestDatabase, N: number, dialect: string): Promise<void> {
    await prepareSample(db, { employees: 50, leaves: N, overtime: 0, trips: 0, outs: 0, approvedShare: 1, seed: 5, startDate: '2026-01-05', days: 300, batchSize: 500 });
    await db.db('leave_requests').update({ leave_type_code: 'NOPE' });
    const raw = YAML.parse(fs.readFileSync('config/attendance-sync.example.postgres.yaml', 'utf8'));
    raw.kinds = { leave: raw.kinds.leave };
    raw.log = { level: 'info', format: 'json' };
    const cfg = writeConfig(`invalid-${dialect}`, raw);
    // Approved and not deleted: the rows that are mapped (and found invalid); the rest are inactive.
    const want = Number(((await db.db('leave_requests').where({ status: 'approved' }).whereNull('deleted_at').count({ n: '*' }).first()) as { n: number | string }).n);
    expect(want).toBeGreaterThan(N * 0.9);
    const env = { SOURCE_DATABASE_URL: db.url, FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: emu.appId, FEISHU_APP_SECRET: emu.appSecret };
    const res = await runProbed(['--config', cfg, 'once'], env);
    const p = res.probe;
    expect(res.code).toBe(0);
    const span = cycleSpan(res.stderr);
    const during = p.times.filter((at) => at > span.from && at < span.to).length;
    const worst = worstDelayDuring(p, span);
    process.stdout.write(
      `${N} rows (${want} invalid) on ${dialect}: peak RSS ${Math.round(p.maxRssMb)} MB; cycle ${span.to - span.from} ms, a 50 ms timer fired ${during} times in it, at worst ${worst} ms late\n`,
    );
    const n = (await db.db(t.syncRecords).where({ kind: 'leave', status: 'invalid' }).count({ n: '*' }).first()) as { n: number | string };
    expect(Number(n.n)).toBe(want);
    expect(res.stderr.match(/invalid source row: recorded, not sent/g)?.length).toBe(want);
    // Flat, not growing with the rows (before: 169 MB here, out of memory at ~80,000 on SQLite).
    expect(p.maxRssMb).toBeLessThan(150);
    // The event loop turns during the cycle: the timer fires throughout it (about twice a page
    // of 500 rows), never 2 s late (before, on SQLite: not once until the cycle ended).
    expect(span.to - span.from).toBeGreaterThan(1_000);
    expect(worst).toBeLessThan(2_000);
    expect(during).toBeGreaterThanOrEqual((span.to - span.from) / 1000);
  }
});

describe('the SQLite lease during a long cycle of `run`', () => {
  let db: TestDatabase;
  let emu: Emulator;
  let child: ChildProcess | null = null;
  beforeAll(async () => {
    db = await createTestDatabase('sqlite', 'hostile_lease');
    emu = await startEmulator({ strict: true });
  });
  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await emu?.close();
    await db?.drop();
  });

  it('a second worker cannot take the lock while the cycle runs longer than the lease', async () => {
    // A long plan phase (40,000 rows, synchronous SQLite work) and then a send phase whose
    // length does not depend on the machine's speed: 200 valid rows at 20 calls/s take at
    // least 10 s, so the cycle outlasts the 5 s lease on the fastest machine too.
    await prepareSample(db, { employees: 50, leaves: 40_000, overtime: 0, trips: 0, outs: 0, approvedShare: 1, seed: 6, startDate: '2026-01-05', days: 300, batchSize: 500 });
    const valid = (await db.db('leave_requests').orderBy('id').limit(200).pluck('id')) as number[];
    await db.db('leave_requests').whereNotIn('id', valid).update({ leave_type_code: 'NOPE' });
    const raw = YAML.parse(fs.readFileSync('config/attendance-sync.example.sqlite.yaml', 'utf8'));
    raw.kinds = { leave: raw.kinds.leave };
    raw.feishu.rate_limit = 20;
    raw.sync.lock_lease_seconds = 5;
    raw.sync.schedule = '0 0 1 1 *'; // the first cycle runs when the lock is taken; no other
    raw.log = { level: 'info', format: 'json' };
    const cfg = writeConfig('lease', raw);
    const env = { SOURCE_DATABASE_URL: db.url, FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: emu.appId, FEISHU_APP_SECRET: emu.appSecret };
    const c = spawnCli(['--config', cfg, 'run'], env, path.join(dir, 'lease-probe.json'));
    child = c;
    let stderr = '';
    c.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    c.stdout!.resume();
    const deadline = Date.now() + 60_000;
    while (!/leader lock acquired/.test(stderr) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(stderr).toMatch(/leader lock acquired/);

    const intruder = createLeaderLock(db.db, t, { owner: 'intruder', leaseMs: 5_000 });
    const attempts: boolean[] = [];
    const beats = new Set<number>();
    const until = Date.now() + 240_000;
    while (!/cycle finished/.test(stderr) && Date.now() < until) {
      attempts.push(await intruder.tryAcquire().catch(() => false));
      const row = (await db.db(t.lock).first('heartbeat_at').catch(() => undefined)) as { heartbeat_at: number | string } | undefined;
      if (row) beats.add(Number(row.heartbeat_at));
      await new Promise((r) => setTimeout(r, 250));
    }
    const line = stderr.split('\n').find((l) => l.includes('cycle finished'));
    expect(line).toBeDefined();
    const durationMs = Number((JSON.parse(line!) as { durationMs: number }).durationMs);
    process.stdout.write(`lease: cycle of ${durationMs} ms under a 5,000 ms lease, ${attempts.length} takeover attempts, ${beats.size} distinct heartbeats\n`);
    // Meaningful only if the cycle outlasted the lease; it sent the valid rows at the pace.
    expect(durationMs).toBeGreaterThan(9_500);
    expect(Number((JSON.parse(line!) as { sent: number }).sent)).toBeGreaterThanOrEqual(150);
    expect(attempts.length).toBeGreaterThan(10);
    expect(attempts.filter(Boolean)).toHaveLength(0);
    // Renewed while the cycle ran: about every third of the lease.
    expect(beats.size).toBeGreaterThanOrEqual(3);
    c.kill('SIGTERM');
    expect(await new Promise((r) => c.on('close', r))).toBe(0);
  }, 300_000);
});
