import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DateTime } from 'luxon';
import YAML from 'yaml';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { prepareSample } from './helpers/pipeline.js';
import { runCli } from './helpers/cli.js';
import { operatorSql, sourceRelation } from '../src/source/relation.js';
import type { AnyKindConfig } from '../src/config/schema.js';

/*
 * `source.query` is the operator's SQL, embedded as a subquery around which the worker binds
 * its own filters. A `?` inside a string literal, a quoted name or a comment is text and must
 * reach the database as text; one outside is refused with a clear message.
 */

describe('operatorSql', () => {
  it('refuses a placeholder outside literals, naming its position', () => {
    expect(() => operatorSql('SELECT * FROM t WHERE a = ?', 'sqlite')).toThrow(/source\.query: `\?` at character 27 is outside any string literal or comment/);
    expect(() => operatorSql("SELECT * FROM t WHERE j ? 'k'", 'pg')).toThrow(/jsonb_exists/);
    expect(() => operatorSql("SELECT 'it''s' AS a, ? AS b", 'mysql')).toThrow(/character 22/);
  });
  it('keeps literals, quoted names and comments; escapes for PostgreSQL', () => {
    const sql = `SELECT 'a?b' AS "q?", c -- why?\n/* ? */ FROM t`;
    expect(operatorSql(sql, 'sqlite')).toBe(sql);
    expect(operatorSql(sql, 'pg')).toBe(`SELECT 'a\\?b' AS "q\\?", c -- why\\?\n/* \\? */ FROM t`);
    expect(operatorSql("SELECT 'x\\'?' AS a", 'mysql')).toBe("SELECT 'x\\'?' AS a");
  });
});

describe.each(dialectsUnderTest())('a `?` inside a literal of source.query on %s', (dialect) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase(dialect, `qguard_${dialect}`);
    await prepareSample(db, { employees: 5, leaves: 12, overtime: 2, trips: 2, outs: 2, seed: 4, startDate: '2026-03-02', days: 20, now: DateTime.utc().minus({ hours: 2 }) });
  });
  afterAll(async () => db?.drop());

  it('reads as text next to bound filters', async () => {
    const cfg = { source: { query: "SELECT id, 'why?' AS note FROM leave_requests -- are ids > 0?" } } as unknown as AnyKindConfig;
    const rows = (await sourceRelation(db.db, cfg).where('id', '>', 0).orderBy('id')) as Array<{ id: number; note: string }>;
    expect(rows.length).toBe(12);
    expect(rows.every((r) => r.note === 'why?')).toBe(true);
  });

  it('`preview` through the CLI maps the rows', async () => {
    const raw = YAML.parse(fs.readFileSync('config/attendance-sync.example.sqlite.yaml', 'utf8'));
    raw.kinds = { leave: raw.kinds.leave };
    raw.kinds.leave.source.query = raw.kinds.leave.source.query.replace('r.reason,', "CASE WHEN r.reason = 'n/a?' THEN '?' ELSE r.reason END AS reason, -- 'n/a?' is the old system's blank\n");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qguard-'));
    const file = path.join(dir, 'c.yaml');
    fs.writeFileSync(file, YAML.stringify(raw));
    const res = await runCli(['--config', file, 'preview', '--kind', 'leave', '--limit', '5'], { env: { SOURCE_DATABASE_URL: db.url, FEISHU_APP_ID: 'cli_x', FEISHU_APP_SECRET: 'secret-xyz-1', FEISHU_BASE_URL: 'http://127.0.0.1:1' } });
    expect(res.stderr).not.toMatch(/error/i);
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout).leave).toHaveLength(5);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
