/**
 * `npm run bench:console`: page timings of the web console on a sync table of a million
 * operations, and the worker's RSS while the console is in use.
 *
 *   npm run bench:console                          # SQLite state, 1,000,000 operations
 *   npm run bench:console -- --dialect pg --ops 1000000
 *
 * It fills a state database with `--ops` operations (most sent; some keys edited, so a
 * create revoked, its revoke and the next create; 2 % failed, 0.5 % dead, 0.5 % invalid), one
 * records row per key and a day of cycles, then starts `run` (the real CLI, the emulator in
 * its own process, a small sample source) with the console on, and times each page and JSON
 * endpoint over HTTP. Prints median and 95th percentile per URL, and the worker's RSS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { DateTime } from 'luxon';
import YAML from 'yaml';
import { connect, type Knex } from '../src/db/connect.js';
import { createSampleSchema, seedSample } from '../src/sample/index.js';
import { migrateLatest } from '../src/state/migrate.js';
import { stateTables } from '../src/state/tables.js';
import { recountOperations } from '../src/state/outbox.js';
import { createScratchDatabase, type ScratchDatabase } from '../test/helpers/scratch.js';
import { deployedNodeArgs } from './nodeArgs.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/src/cli/index.js');
const PREFIX = 'attendance_sync_';

function rssMb(pid: number): { rss: number; hwm: number } {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(text)?.[1] ?? 0);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

async function waitForLine(child: ChildProcess, re: RegExp, ms: number): Promise<RegExpExecArray> {
  let text = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}: ${text.slice(-2000)}`)), ms);
    const on = (d: Buffer) => {
      text += d.toString();
      const m = re.exec(text);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', on);
    child.once('exit', (code) => reject(new Error(`exited with ${code}: ${text.slice(-2000)}`)));
  });
}

/** Fill the sync table with `ops` operations, the records table with one row per key, and a day of cycles. */
async function fill(db: Knex, ops: number): Promise<{ keys: number; sampleKey: string; editedKey: string; employee: string }> {
  const t = stateTables(PREFIX);
  const now = Date.now();
  const start = now - 30 * 86400_000;
  const BATCH = 500;
  let id = 0;
  let key = 0;
  let editedKey = '';
  let opsRows: Array<Record<string, unknown>> = [];
  let recRows: Array<Record<string, unknown>> = [];
  const flush = async () => {
    if (opsRows.length === 0) return;
    const a = opsRows;
    const b = recRows;
    opsRows = [];
    recRows = [];
    await db.transaction(async (trx) => {
      for (let i = 0; i < a.length; i += BATCH) await trx(t.syncRecords).insert(a.slice(i, i + BATCH));
      for (let i = 0; i < b.length; i += BATCH) await trx(t.records).insert(b.slice(i, i + BATCH));
    });
  };
  while (id < ops) {
    key++;
    const sourceKey = `B-${String(key).padStart(8, '0')}`;
    const user = `E${String((key % 5000) + 1).padStart(5, '0')}`;
    const date = DateTime.fromMillis(start + (key % 30) * 86400_000).toUTC();
    const day = date.toFormat('yyyy-MM-dd');
    const at = start + Math.floor(((now - start) * id) / ops);
    const payload = JSON.stringify({ user_id: user, date: date.toFormat('yyyyMMdd'), leaves: [{ uniq_id: 'ANNUAL', unit: 1, interval: 28800, start_time: `${day} 09:00:00`, end_time: `${day} 18:00:00`, idempotent_id: `fas-l-${key}` }] });
    const base = { kind: 'leave', source_key: sourceKey, generation: 0, attempts: 1, next_attempt_at: at, user_id: user, effective_date: day, created_at: at, updated_at: at, payload };
    const r = key % 1000;
    let version = `v1-${key}`;
    if (r < 20) {
      opsRows.push({ ...base, version, operation: 'create', idempotency_key: `fas-l-${key}`, status: 'failed', feishu_code: 1220004, feishu_msg: 'user_id is not exist or does not have permission', error_code: 'FEISHU_USER_NOT_FOUND' });
      id += 1;
    } else if (r < 25) {
      opsRows.push({ ...base, version, operation: 'create', idempotency_key: `fas-l-${key}`, status: 'dead', attempts: 8, error_code: 'FEISHU_TIMEOUT' });
      id += 1;
    } else if (r < 30) {
      opsRows.push({ ...base, version, operation: 'create', status: 'invalid', payload: null, reasons: JSON.stringify(['leave_type: unknown type code "X9"']) });
      id += 1;
    } else if (r < 80 && id + 3 <= ops) {
      // Edited once: the first create revoked, the revoke sent, the second version sent.
      const firstId = id + 1;
      opsRows.push({ ...base, version, operation: 'create', idempotency_key: `fas-l-${key}`, status: 'revoked', approval_id: `7${String(firstId).padStart(18, '0')}`, sent_at: at });
      opsRows.push({ ...base, version, operation: 'revoke', status: 'sent', revokes_id: firstId, sent_at: at + 1000, payload: null });
      version = `v2-${key}`;
      opsRows.push({ ...base, version, operation: 'create', idempotency_key: `fas-l-${key}-2`, status: 'sent', approval_id: `7${String(firstId + 2).padStart(18, '0')}`, sent_at: at + 2000 });
      id += 3;
      editedKey = sourceKey;
    } else {
      opsRows.push({ ...base, version, operation: 'create', idempotency_key: `fas-l-${key}`, status: 'sent', approval_id: `7${String(id + 1).padStart(18, '0')}`, sent_at: at });
      id += 1;
    }
    recRows.push({ kind: 'leave', source_key: sourceKey, version: r < 30 ? null : version, state: r >= 25 && r < 30 ? 'invalid' : 'active', user_id: user, effective_date: day, generation: 0, first_seen_at: at, updated_at: at });
    if (opsRows.length >= 20_000) await flush();
  }
  await flush();
  // Written here around the outbox's writers: its kept counts are taken afresh.
  await recountOperations(db, t);
  // A day of cycles, one a minute.
  const runs = [];
  for (let i = 0; i < 1440; i++) {
    const s = now - (1440 - i) * 60_000;
    runs.push({ type: 'cycle', started_at: s, finished_at: s + 800 + (i % 17) * 90, outcome: 'ok', counts: JSON.stringify({ read: (i * 37) % 400, sent: (i * 37) % 400 }), host: 'bench', pid: 1 });
  }
  for (let i = 0; i < runs.length; i += BATCH) await db(t.runs).insert(runs.slice(i, i + BATCH));
  return { keys: key, sampleKey: `B-${String(Math.floor(key / 2)).padStart(8, '0')}`, editedKey, employee: 'E00042' };
}

async function time(url: string, n: number): Promise<{ median: number; p95: number; bytes: number; status: number }> {
  const ms: number[] = [];
  let bytes = 0;
  let status = 0;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const res = await fetch(url);
    const body = await res.arrayBuffer();
    ms.push(performance.now() - t0);
    bytes = body.byteLength;
    status = res.status;
  }
  ms.sort((a, b) => a - b);
  return { median: ms[Math.floor(n / 2)]!, p95: ms[Math.min(n - 1, Math.ceil(n * 0.95) - 1)]!, bytes, status };
}

async function main(): Promise<void> {
  const program = new Command()
    .option('--dialect <d>', 'state database: sqlite or pg', 'sqlite')
    .option('--ops <n>', 'operations in the sync table', '1000000')
    .option('--repeat <n>', 'requests per URL', '20')
    .parse();
  const o = program.opts<{ dialect: string; ops: string; repeat: string }>();
  const ops = Number(o.ops);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-console-'));
  let scratch: ScratchDatabase | undefined;
  let stateUrl: string;
  let state: Knex;
  if (o.dialect === 'pg') {
    scratch = await createScratchDatabase('pg', 'bench_console');
    stateUrl = scratch.url;
    state = scratch.db;
  } else {
    stateUrl = `sqlite:${path.join(dir, 'state.sqlite')}`;
    state = connect(stateUrl, { poolMax: 1 });
  }
  const sourceUrl = `sqlite:${path.join(dir, 'source.sqlite')}`;
  const source = connect(sourceUrl, { poolMax: 1 });
  const children: ChildProcess[] = [];
  try {
    await createSampleSchema(source);
    await seedSample(source, { employees: 20, leaves: 40, overtime: 0, trips: 0, outs: 0, days: 20, startDate: '2026-03-02', seed: 3, now: DateTime.now().setZone('Asia/Shanghai').minus({ hours: 1 }) });
    await source.destroy();
    await migrateLatest(state, PREFIX);
    const t0 = Date.now();
    const filled = await fill(state, ops);
    const fillSeconds = (Date.now() - t0) / 1000;
    if (o.dialect === 'pg') await state.raw('ANALYZE');
    else await state.raw('ANALYZE');
    if (!scratch) await state.destroy();

    const emu = spawn(process.execPath, [CLI, 'emulator', '--port', '0', '--rate-limit', '500'], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(emu);
    const emuUrl = (await waitForLine(emu, /listening on (http:\/\/\S+)/, 15_000))[1]!;
    const raw = YAML.parse(fs.readFileSync(path.join(ROOT, 'config/attendance-sync.example.sqlite.yaml'), 'utf8'));
    for (const k of ['overtime', 'trip', 'out']) delete raw.kinds[k];
    raw.log = { level: 'info', format: 'json' };
    raw.metrics = { enabled: true, host: '127.0.0.1', port: 0 };
    raw.sync.rescan_window_days = 0;
    const cfg = path.join(dir, 'config.yaml');
    fs.writeFileSync(cfg, YAML.stringify(raw));
    const env = {
      PATH: process.env.PATH,
      TZ: 'UTC',
      NODE_ENV: 'production',
      SOURCE_DATABASE_URL: sourceUrl,
      STATE_DATABASE_URL: stateUrl,
      FEISHU_BASE_URL: emuUrl,
      FEISHU_APP_ID: 'cli_emulator',
      FEISHU_APP_SECRET: 'emulator-secret',
      ATTENDANCE_SYNC_CONSOLE_TOKEN: 'bench-console-token-0123456789',
    };
    // The deployed node arguments (ecosystem.config.cjs): the heap capped as in production.
    const worker = spawn(process.execPath, [...(await deployedNodeArgs()), CLI, '--config', cfg, 'run'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(worker);
    const base = (await waitForLine(worker, /"url":"(http:\/\/127\.0\.0\.1:\d+)\/metrics"/, 30_000))[1]!;
    await waitForLine(worker, /"message":"cycle finished"/, 90_000);
    const idle = rssMb(worker.pid!);

    const first = (await (await fetch(`${base}/api/records?limit=50`)).json()) as { next: string };
    const deep = Math.floor(ops / 3);
    const urls: Array<[string, string]> = [
      ['/ (overview)', '/'],
      ['/problems', '/problems'],
      ['/problems, page 2', `/problems?cursor=${first.next}`],
      ['/problems, deep cursor', `/problems?cursor=${deep}`],
      ['/problems?status=dead', '/problems?status=dead'],
      ['/problems?code=1220004', '/problems?code=1220004'],
      ['/problems?q=<employee>', `/problems?q=${filled.employee}`],
      ['/problems?q=<source key>', `/problems?q=${filled.sampleKey}`],
      ['/record (edited key)', `/record/leave/${filled.editedKey}`],
      ['/api/records', '/api/records'],
      ['/api/records?limit=200', '/api/records?limit=200'],
      ['/api/records/:kind/:key', `/api/records/leave/${filled.editedKey}`],
      ['/api/status', '/api/status'],
    ];
    const repeat = Number(o.repeat);
    const lines: string[] = [];
    lines.push(`console bench: ${o.dialect} state, ${ops.toLocaleString('en')} operations over ${filled.keys.toLocaleString('en')} keys (filled in ${fillSeconds.toFixed(0)} s), ${repeat} requests per URL`);
    lines.push(`${'URL'.padEnd(30)} ${'median ms'.padStart(10)} ${'p95 ms'.padStart(8)} ${'bytes'.padStart(8)}  status`);
    for (const [label, u] of urls) {
      const r = await time(`${base}${u}`, repeat);
      lines.push(`${label.padEnd(30)} ${r.median.toFixed(1).padStart(10)} ${r.p95.toFixed(1).padStart(8)} ${String(r.bytes).padStart(8)}  ${r.status}`);
    }
    const busy = rssMb(worker.pid!);
    lines.push(`worker RSS: ${idle.rss.toFixed(0)} MB idle after its first cycle, ${busy.rss.toFixed(0)} MB after the console load (peak ${busy.hwm.toFixed(0)} MB)`);
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    if (scratch) await scratch.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
