import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import YAML from 'yaml';
import { DateTime } from 'luxon';
import { createTestDatabase, type TestDatabase } from './helpers/databases.js';
import { baseRawConfig } from './helpers/config.js';
import { CLI } from './helpers/cli.js';
import { migrateLatest } from '../src/state/migrate.js';
import { stateTables } from '../src/state/tables.js';

/*
 * The rescan's deletion check walks the keys Feishu holds for the window page by page: its
 * memory does not grow with the number of keys (it held them all: ~126 MB per million).
 * Measured through the CLI under the deployed node arguments, with 150,000 and 600,000 keys
 * (before: 145 MB at 150,000, 282 MB at a million; after: 125 and 126 MB).
 */

const t = stateTables('attendance_sync_');

let dir = '';
let deployedArgs: string[] = [];
beforeAll(async () => {
  const eco = (await import(path.resolve('ecosystem.config.js'))) as { apps: Array<{ node_args?: string[] }> };
  deployedArgs = eco.apps[0]?.node_args ?? [];
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rescan-mem-'));
  fs.writeFileSync(path.join(dir, 'rss.cjs'), `process.on('exit', () => require('fs').writeFileSync(process.env.RSS_OUT, String(process.resourceUsage().maxRSS / 1024)));\n`);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** `n` held keys (records of the window), the source rows of all but every 600th key; the deleted keys. */
async function seed(db: TestDatabase, n: number): Promise<string[]> {
  await db.db.schema.createTable('held_src', (tb) => {
    tb.integer('id').primary();
    tb.string('employee_no', 20);
    tb.string('type_code', 16);
    tb.string('start_at', 19);
    tb.string('end_at', 19);
    tb.string('status', 16);
    tb.string('updated_at', 26).nullable();
  });
  await migrateLatest(db.db, 'attendance_sync_');
  const today = DateTime.now().setZone('Asia/Shanghai').toFormat('yyyy-MM-dd');
  // Out of the rescan window and without a cursor value: only the deletion check looks at them.
  await db.db.raw(
    `INSERT INTO held_src (id, employee_no, type_code, start_at, end_at, status, updated_at)
     WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ${n})
     SELECT i, 'E00001', 'ANNUAL', '2020-01-06 09:00:00', '2020-01-06 18:00:00', 'approved', NULL FROM c WHERE i % 600 <> 0`,
  );
  await db.db.raw(
    `INSERT INTO ${t.records} (kind, source_key, version, state, user_id, effective_date, reasons, generation, first_seen_at, updated_at)
     WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ${n})
     SELECT 'leave', CAST(i AS TEXT), 'v1', 'active', 'E00001', '${today}', NULL, 0, 0, 0 FROM c`,
  );
  return Array.from({ length: Math.floor(n / 600) }, (_, i) => String((i + 1) * 600));
}

async function rescan(db: TestDatabase): Promise<{ code: number | null; rssMb: number; stderr: string }> {
  const raw = baseRawConfig();
  raw.log = { level: 'warn', format: 'json' };
  const leave = raw.kinds.leave;
  leave.source = { table: 'held_src' };
  leave.effective_date = 'start_at';
  delete leave.deleted;
  leave.status = { column: 'status', approved: ['approved'] };
  leave.fields = { user_id: 'employee_no', start_time: 'start_at', end_time: 'end_at', type: 'type_code', unit: { value: 1 }, reason: { value: '无' } };
  const file = path.join(dir, `${path.basename(db.url)}.yaml`);
  fs.writeFileSync(file, YAML.stringify(raw));
  const out = path.join(dir, `${path.basename(db.url)}.rss`);
  const child = spawn(process.execPath, [...deployedArgs, '--require', path.join(dir, 'rss.cjs'), CLI, '--config', file, 'once', '--rescan', '--no-send'], {
    env: { PATH: process.env.PATH, TZ: 'UTC', NODE_ENV: 'test', RSS_OUT: out, SOURCE_DATABASE_URL: db.url },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, rssMb: Number(fs.readFileSync(out, 'utf8')), stderr };
}

describe('rescan over many held keys on SQLite', () => {
  it('revokes exactly the deleted keys with flat memory: 600,000 keys peak like 150,000', async () => {
    const figures: Record<number, number> = {};
    for (const n of [150_000, 600_000]) {
      const db = await createTestDatabase('sqlite', `rescan_mem_${n}`);
      try {
        const deleted = await seed(db, n);
        const r = await rescan(db);
        expect(r.stderr).not.toMatch(/heap out of memory/i);
        expect(r.code).toBe(0);
        figures[n] = r.rssMb;
        const inactive = ((await db.db(t.records).where({ kind: 'leave', state: 'inactive' }).select('source_key')) as Array<{ source_key: string }>).map((x) => x.source_key);
        expect(inactive.sort()).toEqual([...deleted].sort());
        expect(Number(((await db.db(t.records).whereNotNull('version').count({ n: '*' }).first()) as { n: number | string }).n)).toBe(n - deleted.length);
      } finally {
        await db.drop();
      }
    }
    process.stdout.write(`rescan peak RSS: ${Math.round(figures[150_000]!)} MB for 150,000 held keys, ${Math.round(figures[600_000]!)} MB for 600,000\n`);
    expect(figures[600_000]! - figures[150_000]!).toBeLessThan(15);
  }, 180_000);
});
