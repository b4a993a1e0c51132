import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PassThrough } from 'node:stream';
import YAML from 'yaml';
import { resolveConfig } from '../config/load.js';
import { connect } from '../db/connect.js';
import { startEmulator } from '../emulator/index.js';
import { KINDS } from '../kinds.js';
import { createLogger } from '../log/logger.js';
import { runCycle, type CycleResult } from '../pipeline/cycle.js';
import { openPipeline } from '../pipeline/wiring.js';
import { cancelRows, createSampleSchema, sampleNow, seedSample, softDeleteRows, touchRows } from '../sample/index.js';
import { migrateLatest } from '../state/migrate.js';
import { collectStatus, cursorZones, renderStatus } from '../state/status.js';
import { prepareDemoDir } from './dir.js';

/** The package root (config/ lives there), wherever the demo is started from. */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('package root not found');
    dir = up;
  }
  return dir;
}

function line(r: CycleResult): string {
  const p = r.plan;
  const s = r.send;
  return `read ${p.read}, created ${p.created}, revoked ${p.revoked}, unchanged ${p.unchanged}, invalid ${p.invalid}; sent ${s.sent}, failed ${s.failed}, dead ${s.dead} (${(r.durationMs / 1000).toFixed(1)} s)`;
}

/**
 * The one-command demo: a SQLite HR database with the sample schema, the Feishu emulator in
 * this process, migrate, sync, edit and cancel a few records, sync again, and show what the
 * sync table and Feishu now hold. Leaves nothing running.
 */
export async function runDemo(opts: { dir: string; out?: NodeJS.WritableStream }): Promise<{ ok: boolean }> {
  const out = opts.out ?? process.stdout;
  const say = (s = '') => out.write(s + '\n');
  const dir = path.resolve(opts.dir);
  prepareDemoDir(dir);
  const dbFile = path.join(dir, 'hr.sqlite');

  say('attendance-sync demo');
  say(`1. A sample HR database (SQLite): ${dbFile}`);
  const url = `sqlite:${dbFile}`;
  const db = connect(url);
  await createSampleSchema(db);
  const seeded = await seedSample(db, { employees: 12, leaves: 30, overtime: 12, trips: 8, outs: 12, seed: 2026, now: sampleNow().minus({ minutes: 30 }) });
  const users = (await db('employees').pluck('employee_no')) as string[];
  say(`   ${seeded.employees} employees, ${seeded.leaves} leave, ${seeded.overtime} overtime, ${seeded.trips} trip and ${seeded.outs} going-out requests`);

  const emu = await startEmulator({ strict: true, users, rateLimit: 50 });
  say(`2. The Feishu emulator: ${emu.url} (strict validation, 50 requests/s)`);

  const raw = YAML.parse(fs.readFileSync(path.join(packageRoot(), 'config/attendance-sync.example.sqlite.yaml'), 'utf8'));
  raw.log = { level: 'error', format: 'json' };
  const config = resolveConfig(raw, {
    env: { SOURCE_DATABASE_URL: url, FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: emu.appId, FEISHU_APP_SECRET: emu.appSecret },
    configPath: 'config/attendance-sync.example.sqlite.yaml',
  });
  const logStream = new PassThrough();
  logStream.resume();
  const logger = createLogger({ level: 'error', format: 'json', stream: logStream });
  let ok = true;
  try {
    const applied = await migrateLatest(db, config.state.table_prefix);
    say(`3. migrate: ${applied.length} migration(s) applied`);
    await db.destroy();
    const p = await openPipeline(config, logger);
    try {
      const first = await runCycle(p.deps);
      say(`4. First sync:  ${line(first)}`);
      const leaves = (await p.dbs.source('leave_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').limit(5).pluck('id')) as number[];
      const trips = (await p.dbs.source('trip_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').limit(1).pluck('id')) as number[];
      await touchRows(p.dbs.source, 'leave_requests', leaves.slice(0, 3), { reason: '改期：行程变更' });
      await cancelRows(p.dbs.source, 'leave_requests', leaves.slice(3, 5));
      await softDeleteRows(p.dbs.source, 'trip_requests', trips);
      say(`5. In the HR system: 3 leave requests edited, 2 cancelled, 1 trip deleted`);
      const second = await runCycle(p.deps);
      say(`6. Second sync: ${line(second)}`);
      ok = first.outcome === 'ok' && second.outcome === 'ok';
      say('');
      say('npx attendance-sync status');
      say(renderStatus(await collectStatus(p.dbs.state, p.dbs.tables, cursorZones(config))).replace(/^/gm, '  '));
    } finally {
      await p.close();
    }
    const ledger = emu.ledger();
    say('What Feishu now holds (emulator ledger)');
    for (const k of KINDS) {
      const mine = ledger.filter((e) => e.kind === k);
      say(`  ${k.padEnd(9)} approved ${String(mine.filter((e) => e.status === 2).length).padStart(3)}   revoked ${String(mine.filter((e) => e.status === 4).length).padStart(3)}`);
    }
    const sample = ledger.filter((e) => e.kind === 'leave' && e.status === 2).slice(0, 3);
    // Feishu holds wall-clock times in the attendance group's zone: say which.
    for (const e of sample) say(`  e.g. ${e.userId} ${String(e.item.start_time)} → ${String(e.item.end_time)} ${config.feishu.time_zone} ${JSON.stringify((e.item.i18n_names as Record<string, string>)?.ch ?? '')} ${String(e.item.reason)}`);
    say('');
    say(ok ? 'Demo finished: everything synced. Try `npx attendance-sync emulator` and `npx attendance-sync check-config` next.' : 'Demo finished with failures (see status above).');
  } finally {
    await emu.close();
  }
  return { ok };
}
