/**
 * `npm run bench`: the worker against the emulator (a separate process, so the figures are
 * the worker's own) and the real databases. Prints one table with the targets beside the figures.
 *
 *   npm run bench                                 # everything, default sizes
 *   npm run bench -- --only throughput,idle       # some sections
 *   npm run bench -- --rss-sizes 100000 --backfill-employees 2000
 *
 * Sections: throughput (50/s limit, PostgreSQL), e2e (no limit, PostgreSQL and MariaDB, share
 * of time per stage), rss (peak RSS draining a backlog, one child process per size), idle (an
 * idle poll over a large source: EXPLAIN and time), backfill (one year for N employees
 * against the floor set by 50 calls/s), hostile (peak RSS of `once` under the deployed node
 * arguments on each database: 100,000 invalid rows, and a page of rows with an unused 10 MB
 * column).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { DateTime } from 'luxon';
import YAML from 'yaml';
import { resolveConfig, type ResolvedConfig } from '../src/config/load.js';
import os from 'node:os';
import { connect, type Knex } from '../src/db/connect.js';
import { dialectFor } from '../src/db/dialect.js';
import { createLogger } from '../src/log/logger.js';
import { runCycle, type CycleResult } from '../src/pipeline/cycle.js';
import { openPipeline } from '../src/pipeline/wiring.js';
import { createSampleSchema, seedSample } from '../src/sample/index.js';
import { migrateLatest } from '../src/state/migrate.js';
import { iterateChanged, pageQuery } from '../src/source/extract.js';
import { ADMIN_URLS, createScratchDatabase, type ScratchDatabase } from '../test/helpers/scratch.js';
import type { AnyKindConfig } from '../src/config/schema.js';
import { deployedNodeArgs } from './nodeArgs.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/src/cli/index.js');
const SELF = fileURLToPath(import.meta.url);
type Dialect = keyof typeof ADMIN_URLS;

// ---------------------------------------------------------------- infrastructure

interface EmulatorProcess {
  url: string;
  child: ChildProcess;
  stats(): Promise<{ calls: Record<string, number>; rateLimited: number; busiestSecond: number; created: number; duplicates: number }>;
  close(): Promise<void>;
}

/** The emulator as a child process: its CPU is not the worker's. */
async function startEmulatorProcess(rateLimit: number): Promise<EmulatorProcess> {
  // BENCH_PROFILE=1 writes a CPU profile of the emulator too (node --cpu-prof, in the cwd).
  const child = spawn(process.execPath, [...(process.env.BENCH_PROFILE ? ['--cpu-prof'] : []), CLI, 'emulator', '--port', '0', '--rate-limit', String(rateLimit), '--strict'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let text = '';
    child.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(text);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`emulator exited with ${code}`)));
  });
  return {
    url,
    child,
    stats: async () => (await (await fetch(`${url}/_emulator/stats`)).json()) as never,
    close: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

type BenchDb = ScratchDatabase;

function createDb(dialect: Dialect, label: string): Promise<BenchDb> {
  return createScratchDatabase(dialect, `bench_${label}`);
}

function benchConfig(url: string, emuUrl: string, tweak: (raw: any) => void = () => {}): ResolvedConfig {
  const raw = YAML.parse(fs.readFileSync(path.join(ROOT, 'config/attendance-sync.example.postgres.yaml'), 'utf8'));
  raw.log = { level: 'warn', format: 'json' };
  raw.feishu.retry_base_ms = 50;
  tweak(raw);
  return resolveConfig(raw, { env: { SOURCE_DATABASE_URL: url, FEISHU_BASE_URL: emuUrl, FEISHU_APP_ID: 'cli_emulator', FEISHU_APP_SECRET: 'emulator-secret' } });
}

/** Records spread over four kinds in the sample's proportions; `now` in the sample's zone. */
async function seed(db: Knex, records: number, o: { employees?: number; days?: number; startDate?: string; only?: 'leave' } = {}): Promise<void> {
  await createSampleSchema(db);
  const split = o.only === 'leave' ? { leaves: records, overtime: 0, trips: 0, outs: 0 } : { leaves: Math.round(records * 0.5), overtime: Math.round(records * 0.2), trips: Math.round(records * 0.1), outs: Math.round(records * 0.2) };
  await seedSample(db, {
    ...split,
    employees: o.employees ?? 500,
    days: o.days ?? 120,
    startDate: o.startDate ?? '2026-03-02',
    seed: 42,
    approvedShare: 1,
    batchSize: 1000,
    now: DateTime.now().setZone('Asia/Shanghai').minus({ hours: 1 }),
  });
}

async function cycleUntilDrained(cfg: ResolvedConfig, opts: { unlimited?: boolean } = {}): Promise<{ result: CycleResult; cycles: CycleResult[] }> {
  const logger = createLogger({ level: 'warn', format: 'json' });
  const p = await openPipeline(cfg, logger, { poolMax: 10, ...(opts.unlimited ? { rateLimit: Infinity } : {}) });
  const cycles: CycleResult[] = [];
  try {
    if (!(await p.lock.tryAcquire())) throw new Error('lock held');
    for (let i = 0; i < 10; i++) {
      const r = await runCycle(p.deps);
      cycles.push(r);
      if (r.outboxDepth === 0) break;
    }
    await p.lock.release();
  } finally {
    await p.close();
  }
  return { result: cycles[0]!, cycles };
}

const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const rows: Array<[string, string, string]> = [];
function report(what: string, figure: string, target: string): void {
  rows.push([what, figure, target]);
  process.stderr.write(`  ${what}: ${figure}   (target ${target})\n`);
}

// ---------------------------------------------------------------- sections

async function throughput(records: number): Promise<void> {
  process.stderr.write(`throughput: ${records} records from PostgreSQL at the 50/s limit\n`);
  const emu = await startEmulatorProcess(50);
  const b = await createDb('pg', 'tput');
  try {
    await seed(b.db, records);
    const cfg = benchConfig(b.url, emu.url, (raw) => {
      raw.feishu.rate_limit = 50;
      raw.feishu.concurrency = 8;
    });
    await migrateLatest(b.db, cfg.state.table_prefix);
    const p = await openPipeline(cfg, createLogger({ level: 'warn', format: 'json' }), { poolMax: 10 });
    let sendCpu: NodeJS.CpuUsage;
    let sendWall: number;
    let planCpu: NodeJS.CpuUsage;
    let sendMs = 0;
    try {
      if (!(await p.lock.tryAcquire())) throw new Error('lock held');
      // Extract, map and plan everything first, then send: the send phase is what an operator
      // pays for as long as Feishu's limit paces the worker.
      const cpu0 = process.cpuUsage();
      await runCycle(p.deps, { send: false });
      planCpu = process.cpuUsage(cpu0);
      const cpu1 = process.cpuUsage();
      const t1 = performance.now();
      for (let i = 0; i < 5; i++) {
        const r = await runCycle(p.deps);
        sendMs += r.timings.sendMs;
        if (r.outboxDepth === 0) break;
      }
      sendWall = (performance.now() - t1) / 1000;
      sendCpu = process.cpuUsage(cpu1);
      await p.lock.release();
    } finally {
      await p.close();
    }
    const s = await emu.stats();
    const calls = s.calls.create ?? 0;
    const pct = (c: NodeJS.CpuUsage, wall: number) => ((c.user + c.system) / 1e6 / wall) * 100;
    report('50/s limit: calls/s sustained while sending', `${fmt(calls / (sendMs / 1000), 1)} (${fmt(calls)} creates in ${fmt(sendMs / 1000, 1)} s)`, '≥ 48');
    report('50/s limit: HTTP 429 received', `${s.rateLimited} (busiest second at the emulator: ${s.busiestSecond})`, '0');
    report(
      '50/s limit: worker CPU while sending, average of one core',
      `${fmt(pct(sendCpu, sendWall), 1)} % over ${fmt(sendWall, 1)} s (user ${fmt(sendCpu.user / 1e6, 1)} s, system ${fmt(sendCpu.system / 1e6, 1)} s; ${fmt((sendCpu.user + sendCpu.system) / 1e3 / Math.max(1, calls), 2)} ms per call)`,
      '< 5 %',
    );
    report('50/s limit: CPU to extract, map and plan them', `${fmt((planCpu.user + planCpu.system) / 1e6, 1)} s for ${fmt(records)} records`, '—');
  } finally {
    await b.drop();
    await emu.close();
  }
}

async function endToEnd(dialect: Dialect, records: number): Promise<void> {
  process.stderr.write(`e2e: ${records} records from ${dialect}, no API limit\n`);
  const emu = await startEmulatorProcess(1_000_000);
  const b = await createDb(dialect, 'e2e');
  try {
    await seed(b.db, records);
    const cfg = benchConfig(b.url, emu.url, (raw) => {
      raw.feishu.rate_limit = 1000;
      raw.feishu.concurrency = 32;
      raw.sync.page_size = 1000;
    });
    await migrateLatest(b.db, cfg.state.table_prefix);
    const t0 = performance.now();
    const { cycles } = await cycleUntilDrained(cfg, { unlimited: true });
    const wall = (performance.now() - t0) / 1000;
    const read = cycles.reduce((a, c) => a + c.plan.read, 0);
    const t = { extract: 0, map: 0, plan: 0, send: 0 };
    for (const c of cycles) {
      t.extract += c.timings.extractMs;
      t.map += c.timings.mapMs;
      t.plan += c.timings.planMs;
      t.send += c.timings.sendMs;
    }
    const sum = t.extract + t.map + t.plan + t.send || 1;
    const share = `extract ${fmt((t.extract / sum) * 100)} %, map ${fmt((t.map / sum) * 100)} %, plan ${fmt((t.plan / sum) * 100)} %, send ${fmt((t.send / sum) * 100)} %`;
    const label = dialect === 'pg' ? 'PostgreSQL' : 'MariaDB';
    report(`no limit, ${label}: records/s end to end`, `${fmt(read / wall)} (${fmt(read)} in ${fmt(wall, 1)} s)`, '≥ 1,500');
    report(`no limit, ${label}: share of time`, share, '—');
    report(`no limit, ${label}: records/s read+map+plan only`, fmt(read / ((t.extract + t.map + t.plan) / 1000)), '—');
  } finally {
    await b.drop();
    await emu.close();
  }
}

/** Child process: drain the backlog in `url`, print the peak RSS. */
async function rssChild(url: string, emuUrl: string): Promise<void> {
  const cfg = benchConfig(url, emuUrl, (raw) => {
    raw.feishu.rate_limit = 1000;
    raw.feishu.concurrency = 32;
    raw.sync.page_size = 1000;
  });
  const t0 = performance.now();
  const peak = { heapUsedMb: 0, heapTotalMb: 0, externalMb: 0 };
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    peak.heapUsedMb = Math.max(peak.heapUsedMb, m.heapUsed / 2 ** 20);
    peak.heapTotalMb = Math.max(peak.heapTotalMb, m.heapTotal / 2 ** 20);
    peak.externalMb = Math.max(peak.externalMb, m.external / 2 ** 20);
  }, 250);
  const { cycles } = await cycleUntilDrained(cfg, { unlimited: true });
  clearInterval(sampler);
  const read = cycles.reduce((a, c) => a + c.plan.read, 0);
  const sent = cycles.reduce((a, c) => a + c.send.sent, 0);
  process.stdout.write(`${JSON.stringify({ read, sent, seconds: (performance.now() - t0) / 1000, maxRssMb: process.resourceUsage().maxRSS / 1024, ...peak })}\n`);
}

async function rss(sizes: number[]): Promise<void> {
  // The worker as deployed: with the node arguments of ecosystem.config.js (BENCH_CHILD_NODE_ARGS overrides).
  const nodeArgs = await deployedNodeArgs();
  process.stderr.write(`rss: worker started with ${nodeArgs.join(' ') || 'no node arguments'}\n`);
  for (const n of sizes) {
    process.stderr.write(`rss: backlog of ${fmt(n)} rows (PostgreSQL)\n`);
    const emu = await startEmulatorProcess(1_000_000);
    const b = await createDb('pg', 'rss');
    try {
      await seed(b.db, n, { employees: 2000, days: 365 });
      await migrateLatest(b.db, 'attendance_sync_');
      const out = await new Promise<string>((resolve, reject) => {
        const child = spawn(process.execPath, [...nodeArgs, SELF, '--rss-child', b.url, emu.url], { stdio: ['ignore', 'pipe', 'inherit'] });
        let text = '';
        child.stdout.on('data', (d: Buffer) => (text += d.toString()));
        child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`rss child exited ${code}`))));
      });
      const r = JSON.parse(out.trim().split('\n').pop()!) as { read: number; sent: number; seconds: number; maxRssMb: number; heapUsedMb: number; heapTotalMb: number };
      report(
        `peak RSS draining ${fmt(n)} rows${nodeArgs.length ? '' : ' (no heap flags)'}`,
        `${fmt(r.maxRssMb)} MB; JS heap peak ${fmt(r.heapUsedMb)} MB used of ${fmt(r.heapTotalMb)} MB (${fmt(r.sent)} sent in ${fmt(r.seconds)} s)`,
        '< 200 MB, same for every size',
      );
    } finally {
      await b.drop();
      await emu.close();
    }
  }
}

/** The plan of `q` as text, and whether it reads the cursor index in order without a sort. */
async function explain(db: Knex, dialect: Dialect, q: Knex.Sql): Promise<{ text: string; ordered: boolean }> {
  if (dialect === 'pg') {
    const plan = (await db.raw(`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ${q.sql}`, q.bindings as never)) as { rows: Array<{ 'QUERY PLAN': string }> };
    const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
    return { text, ordered: /Index Scan[^\n]*leave_requests_updated_idx/.test(text) && !/Sort Key/.test(text) };
  }
  const [rows] = (await db.raw(`EXPLAIN ${q.sql}`, q.bindings as never)) as [Array<Record<string, unknown>>];
  const text = rows.map((r) => `${String(r.table)}: type=${String(r.type)} key=${String(r.key)} rows=${String(r.rows)} ${String(r.Extra ?? '')}`).join('\n');
  return { text, ordered: /type=range key=leave_requests_updated_idx/.test(text) && !/filesort/.test(text) };
}

async function idle(dialect: Dialect, n: number): Promise<void> {
  const label = dialect === 'pg' ? 'PostgreSQL' : 'MariaDB';
  process.stderr.write(`idle: poll over ${fmt(n)} rows (${label})\n`);
  const b = await createDb(dialect, 'idle');
  try {
    await seed(b.db, n, { only: 'leave', employees: 2000, days: 365 });
    await b.db.raw(dialect === 'pg' ? 'ANALYZE' : 'ANALYZE TABLE leave_requests');
    const cfg = benchConfig(b.url, 'http://127.0.0.1:1');
    const kind = cfg.kinds.leave as AnyKindConfig;
    const top = (await b.db('leave_requests').orderBy([{ column: 'updated_at', order: 'desc' }, { column: 'id', order: 'desc' }]).first('updated_at', 'id')) as { updated_at: string; id: number };
    const cursor = { value: String(top.updated_at), key: String(top.id) };
    const idlePlan = await explain(b.db, dialect, pageQuery(b.db, kind, cursor, { pageSize: cfg.sync.page_size }).toSQL());
    process.stderr.write(`${idlePlan.text}\n`);
    const times: number[] = [];
    for (let i = 0; i < 30; i++) {
      const t0 = performance.now();
      let read = 0;
      for await (const page of iterateChanged(b.db, kind, cursor, { pageSize: cfg.sync.page_size, lookbackSeconds: 0 })) read += page.rows.length;
      times.push(performance.now() - t0);
      if (read !== 0) throw new Error('idle poll read rows');
    }
    times.sort((a, c) => a - c);
    // The same poll while the lookback window (600 s) still covers the bulk load: every row is
    // re-read once more. Workers do this only until the window settles (see extractKind).
    const t0 = performance.now();
    let reread = 0;
    for await (const page of iterateChanged(b.db, kind, cursor, { pageSize: cfg.sync.page_size, lookbackSeconds: 600 })) reread += page.rows.length;
    const unsettled = performance.now() - t0;
    // A page deep in a backlog: the cursor half way through a bulk load whose rows all share
    // one updated_at (the hardest case for a keyset: only the key tells rows apart).
    const mid = (await b.db('leave_requests').orderBy(['updated_at', 'id']).offset(Math.floor(n / 2)).first('updated_at', 'id')) as { updated_at: string; id: number };
    const deep = { value: String(mid.updated_at), key: String(mid.id) };
    const deepPlan = await explain(b.db, dialect, pageQuery(b.db, kind, deep, { pageSize: cfg.sync.page_size }).toSQL());
    process.stderr.write(`${deepPlan.text}\n`);
    const deepTimes: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t1 = performance.now();
      await pageQuery(b.db, kind, deep, { pageSize: cfg.sync.page_size });
      deepTimes.push(performance.now() - t1);
    }
    deepTimes.sort((a, c) => a - c);
    const idleIndex = dialect === 'pg' ? /Index (Only )?Scan[^\n]*leave_requests_updated_idx/.test(idlePlan.text) : /key=leave_requests_updated_idx/.test(idlePlan.text);
    report(`${label}: idle poll over ${fmt(n)} rows, plan`, idleIndex ? 'cursor index (leave_requests_updated_idx)' : 'NO cursor index in the plan', 'cursor index');
    report(`${label}: idle poll over ${fmt(n)} rows, time`, `p50 ${fmt(times[15]!, 1)} ms, p95 ${fmt(times[28]!, 1)} ms`, '< 20 ms');
    report(`${label}: page of ${cfg.sync.page_size} half way through ${fmt(n)} rows of one updated_at`, `${deepPlan.ordered ? 'index range in order, no sort' : 'NOT an ordered index range'}; ${fmt(deepTimes[2]!, 1)} ms`, 'flat at any depth');
    report(`${label}: poll while the lookback window holds that bulk load`, `${fmt(unsettled)} ms (${fmt(reread)} rows re-read; until the window settles)`, '—');
  } finally {
    await b.drop();
  }
}

async function backfill(employees: number): Promise<void> {
  // About 13 records per employee and year: 6 leaves, 4 overtime, 1 trip, 2 outings.
  const records = employees * 13;
  process.stderr.write(`backfill: one year for ${fmt(employees)} employees (${fmt(records)} records) at 50/s\n`);
  const emu = await startEmulatorProcess(50);
  const b = await createDb('pg', 'backfill');
  const dir = fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'bench-backfill-'));
  try {
    await createSampleSchema(b.db);
    await seedSample(b.db, { employees, leaves: employees * 6, overtime: employees * 4, trips: employees, outs: employees * 2, days: 365, startDate: '2025-11-01', seed: 9, approvedShare: 1, batchSize: 1000 });
    await migrateLatest(b.db, 'attendance_sync_');
    const raw = YAML.parse(fs.readFileSync(path.join(ROOT, 'config/attendance-sync.example.postgres.yaml'), 'utf8'));
    raw.feishu.concurrency = 16;
    raw.log = { level: 'warn', format: 'json' };
    const file = path.join(dir, 'config.yaml');
    fs.writeFileSync(file, YAML.stringify(raw));
    const env = { PATH: process.env.PATH, SOURCE_DATABASE_URL: b.url, FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: 'cli_emulator', FEISHU_APP_SECRET: 'emulator-secret' };
    const t0 = performance.now();
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [CLI, '--config', file, 'backfill', '--from', '2025-11-01', '--to', '2026-10-31'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
      child.on('exit', resolve);
    });
    const wall = (performance.now() - t0) / 1000;
    const s = await emu.stats();
    const calls = s.calls.create ?? 0;
    report(`backfill of a year, ${fmt(employees)} employees`, `${fmt(wall, 1)} s for ${fmt(calls)} creates = ${fmt((wall / (calls / 50)) * 100)} % of the 50/s floor (${fmt(calls / 50, 1)} s)${code === 0 ? '' : `, exit ${code}`}`, 'close to the floor');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    await b.drop();
    await emu.close();
  }
}

/** A database of `dialect` for the hostile section (SQLite: a file in a temporary directory). */
async function hostileDb(dialect: Dialect | 'sqlite', label: string): Promise<{ db: Knex; url: string; drop(): Promise<void> }> {
  if (dialect !== 'sqlite') return createDb(dialect, label);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `bench-${label}-`));
  const url = `sqlite:${path.join(dir, 'hr.sqlite')}`;
  const db = connect(url);
  return { db, url, drop: async () => { await db.destroy(); fs.rmSync(dir, { recursive: true, force: true }); } };
}

/** `once` as pm2 would run it, with its peak RSS (from a preload, at exit) and wall time. */
async function onceRss(url: string, emuUrl: string, raw: Record<string, any>, nodeArgs: string[]): Promise<{ code: number | null; rssMb: number; seconds: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-once-'));
  try {
    const cfg = path.join(dir, 'config.yaml');
    fs.writeFileSync(cfg, YAML.stringify(raw));
    const pre = path.join(dir, 'rss.cjs');
    const out = path.join(dir, 'rss');
    fs.writeFileSync(pre, `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(out)}, String(process.resourceUsage().maxRSS / 1024)));\n`);
    const env = { PATH: process.env.PATH, TZ: 'UTC', SOURCE_DATABASE_URL: url, FEISHU_BASE_URL: emuUrl, FEISHU_APP_ID: 'cli_emulator', FEISHU_APP_SECRET: 'emulator-secret' };
    const t0 = performance.now();
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [...nodeArgs, '--require', pre, CLI, '--config', cfg, 'once'], { env, stdio: ['ignore', 'ignore', 'ignore'] });
      child.on('exit', resolve);
    });
    return { code, rssMb: fs.existsSync(out) ? Number(fs.readFileSync(out, 'utf8')) : NaN, seconds: (performance.now() - t0) / 1000 };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function hostile(invalidRows: number): Promise<void> {
  const nodeArgs = await deployedNodeArgs();
  process.stderr.write(`hostile: once with ${nodeArgs.join(' ') || 'no node arguments'}\n`);
  const emu = await startEmulatorProcess(1_000_000);
  const example = () => YAML.parse(fs.readFileSync(path.join(ROOT, 'config/attendance-sync.example.postgres.yaml'), 'utf8')) as Record<string, any>;
  try {
    for (const dialect of ['pg', 'mysql', 'sqlite'] as const) {
      const label = dialect === 'pg' ? 'PostgreSQL' : dialect === 'mysql' ? 'MariaDB' : 'SQLite';
      process.stderr.write(`hostile: ${fmt(invalidRows)} invalid rows (${label})\n`);
      const b = await hostileDb(dialect, 'invalid');
      try {
        await createSampleSchema(b.db);
        await seedSample(b.db, { employees: 500, leaves: invalidRows, overtime: 0, trips: 0, outs: 0, approvedShare: 1, seed: 5, startDate: '2026-01-05', days: 300, batchSize: 500 });
        await b.db('leave_requests').update({ leave_type_code: 'NOPE' });
        await migrateLatest(b.db, 'attendance_sync_');
        const raw = example();
        raw.kinds = { leave: raw.kinds.leave };
        raw.log = { level: 'warn', format: 'json' };
        const r = await onceRss(b.url, emu.url, raw, nodeArgs);
        report(`${label}: peak RSS of once over ${fmt(invalidRows)} invalid rows`, `${fmt(r.rssMb)} MB in ${fmt(r.seconds, 1)} s${r.code === 0 ? '' : `, exit ${r.code}`}`, '< 200 MB, flat');
      } finally {
        await b.drop();
      }
      process.stderr.write(`hostile: 30 rows with an unused 10 MB column (${label})\n`);
      const w = await hostileDb(dialect, 'wide');
      try {
        await createSampleSchema(w.db);
        await seedSample(w.db, { employees: 20, leaves: 30, overtime: 0, trips: 0, outs: 0, approvedShare: 1, seed: 6, startDate: '2026-01-05', days: 30 });
        await w.db.schema.alterTable('leave_requests', (tb) => tb.text('attachment', 'longtext'));
        const d = dialectFor(w.db).name;
        const big = d === 'pg' ? `repeat('x', ${10 * 2 ** 20})` : d === 'mysql' ? `REPEAT('x', ${10 * 2 ** 20})` : `replace(hex(zeroblob(${5 * 2 ** 20})), '0', 'x')`;
        await w.db.raw(`UPDATE leave_requests SET attachment = ${big}`);
        await migrateLatest(w.db, 'attendance_sync_');
        const raw = example();
        raw.kinds = { leave: { ...raw.kinds.leave, source: { query: 'SELECT r.*, e.employee_no, t.unit AS unit_code, r.duration * 8 AS duration_hours FROM leave_requests r LEFT JOIN employees e ON e.id = r.employee_id LEFT JOIN leave_types t ON t.code = r.leave_type_code' } } };
        raw.log = { level: 'warn', format: 'json' };
        const r = await onceRss(w.url, emu.url, raw, nodeArgs);
        report(`${label}: peak RSS of once over a page of 30 rows × 10 MB unmapped`, `${fmt(r.rssMb)} MB in ${fmt(r.seconds, 1)} s${r.code === 0 ? '' : `, exit ${r.code}`}`, '< 200 MB, exit 0');
      } finally {
        await w.drop();
      }
    }
  } finally {
    await emu.close();
  }
}

// ---------------------------------------------------------------- main

if (process.argv[2] === '--rss-child') {
  await rssChild(process.argv[3]!, process.argv[4]!);
  process.exit(0);
}

const program = new Command('bench')
  .option('--only <sections>', 'throughput,e2e,rss,idle,backfill,hostile', 'throughput,e2e,rss,idle,backfill,hostile')
  .option('--records <n>', 'records for the 50/s throughput run', '5000')
  .option('--e2e-records <n>', 'records for the no-limit runs', '20000')
  .option('--rss-sizes <list>', 'backlog sizes for peak RSS', '100000,1000000')
  .option('--idle-rows <n>', 'rows in the source of the idle poll', '1000000')
  .option('--backfill-employees <n>', 'employees in the backfill year', '2000')
  .option('--invalid-rows <n>', 'invalid rows for the hostile section', '100000')
  .parse();
const o = program.opts<Record<string, string>>();
const only = new Set(o.only!.split(','));
const started = Date.now();
if (only.has('throughput')) await throughput(Number(o.records));
if (only.has('e2e')) {
  await endToEnd('pg', Number(o.e2eRecords));
  await endToEnd('mysql', Number(o.e2eRecords));
}
if (only.has('rss')) await rss(o.rssSizes!.split(',').map(Number));
if (only.has('idle')) {
  await idle('pg', Number(o.idleRows));
  await idle('mysql', Number(o.idleRows));
}
if (only.has('backfill')) await backfill(Number(o.backfillEmployees));
if (only.has('hostile')) await hostile(Number(o.invalidRows));

const width = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length), ['measure', 'figure', 'target'][i]!.length));
const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(width[i]!)).join(' | ')} |`;
process.stdout.write(
  [
    '',
    `node ${process.version}, ${(await import('node:os')).cpus().length} cores, ${new Date().toISOString()}, ${fmt((Date.now() - started) / 1000)} s`,
    line(['measure', 'figure', 'target']),
    `|${width.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...rows.map(line),
    '',
  ].join('\n'),
);
process.exit(0);
