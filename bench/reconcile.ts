/**
 * `npm run build && node dist/bench/reconcile.js [--employees 2000] [--days 30] [--rate 50]`:
 * the calls and seconds of a reconcile of N employees × D days against the emulator at the
 * Feishu rate limit. The sync table is filled first by a cycle without a limit (not timed);
 * then the reconcile runs at `--rate` calls/s against an emulator that enforces the same limit.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { DateTime } from 'luxon';
import YAML from 'yaml';
import { resolveConfig } from '../src/config/load.js';
import { connect } from '../src/db/connect.js';
import { startEmulator } from '../src/emulator/index.js';
import { createLogger } from '../src/log/logger.js';
import { runCycle } from '../src/pipeline/cycle.js';
import { openPipeline } from '../src/pipeline/wiring.js';
import { reconcile } from '../src/reconcile/reconcile.js';
import { createSampleSchema, seedSample } from '../src/sample/index.js';
import { migrateLatest } from '../src/state/migrate.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

async function main(): Promise<void> {
  const o = new Command()
    .option('--employees <n>', 'employees', '2000')
    .option('--days <n>', 'days of records', '30')
    .option('--rate <n>', 'calls per second (client and emulator)', '50')
    .parse()
    .opts<{ employees: string; days: string; rate: string }>();
  const employees = Number(o.employees);
  const days = Number(o.days);
  const rate = Number(o.rate);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-reconcile-'));
  const url = `sqlite:${path.join(dir, 'hr.sqlite')}`;
  const end = DateTime.now().setZone('Asia/Shanghai').startOf('day').minus({ days: 2 });
  const start = end.minus({ days: days - 1 });
  const db = connect(url);
  await createSampleSchema(db);
  // About one record per employee and week.
  await seedSample(db, { employees, leaves: Math.round((employees * days) / 7), overtime: 0, trips: 0, outs: 0, startDate: start.toISODate()!, days, now: DateTime.utc().minus({ hours: 1 }) });
  await migrateLatest(db, 'attendance_sync_');
  await db.destroy();

  const emu = await startEmulator({ rateLimit: 1_000_000 });
  const raw = YAML.parse(fs.readFileSync(path.join(ROOT, 'config/attendance-sync.example.sqlite.yaml'), 'utf8'));
  for (const k of ['overtime', 'trip', 'out']) delete raw.kinds[k];
  raw.log = { level: 'error', format: 'json' };
  raw.feishu.concurrency = 16;
  const config = resolveConfig(raw, { env: { SOURCE_DATABASE_URL: url, FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: emu.appId, FEISHU_APP_SECRET: emu.appSecret } });
  const logger = createLogger({ level: 'error', format: 'json' });

  const fill = await openPipeline(config, logger, { rateLimit: Infinity });
  await fill.lock.tryAcquire();
  const cycle = await runCycle(fill.deps, {});
  await fill.lock.release();
  await fill.close();

  emu.setOptions({ rateLimit: rate });
  const before = emu.stats();
  const p = await openPipeline(config, logger, { rateLimit: rate });
  const t0 = performance.now();
  const r = await reconcile(p.deps, { from: start.toISODate()!, to: end.toISODate()!, kinds: ['leave'], repair: false });
  const seconds = (performance.now() - t0) / 1000;
  await p.close();
  const after = emu.stats();
  await emu.close();
  fs.rmSync(dir, { recursive: true, force: true });
  const line = {
    bench: 'reconcile',
    employees,
    days,
    rate,
    recordsSent: cycle.send.sent,
    usersQueried: r.users,
    recordsCompared: r.checked,
    calls: r.calls,
    seconds: Number(seconds.toFixed(2)),
    callsPerSecond: Number((r.calls / seconds).toFixed(1)),
    rateLimited: after.rateLimited - before.rateLimited,
    drift: r.drifts.length,
  };
  process.stdout.write(
    `reconcile of ${employees} employees × ${days} days at ${rate}/s: ${r.calls} query calls in ${line.seconds} s (${line.callsPerSecond} calls/s, ${line.rateLimited} × 429), ${r.checked} records of ${r.users} users compared, ${r.drifts.length} drift\n`,
  );
  process.stdout.write(JSON.stringify(line) + '\n');
}

main().catch((err) => {
  process.stderr.write(`${String((err as Error).stack ?? err)}\n`);
  process.exit(1);
});
