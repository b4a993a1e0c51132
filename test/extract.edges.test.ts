import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { baseRawConfig } from './helpers/config.js';
import { resolveConfig } from '../src/config/load.js';
import type { AnyKindConfig } from '../src/config/schema.js';
import { iterateChanged } from '../src/source/extract.js';
import { readByEffectiveDate } from '../src/source/window.js';

/** A leave kind reading `source` with a text key `k` and cursor `updated_at`. */
function kindFor(source: { table?: string; query?: string }): AnyKindConfig {
  const raw = baseRawConfig();
  raw.kinds.leave.source = source;
  raw.kinds.leave.key = 'k';
  raw.kinds.leave.effective_date = 'start_at';
  // The extractor reads only mapped columns: map the fields to what these tables have.
  delete raw.kinds.leave.status;
  delete raw.kinds.leave.deleted;
  raw.kinds.leave.fields = { user_id: { value: 'E00001' }, start_time: 'start_at', end_time: 'start_at', type: { value: 'ANNUAL' }, unit: { value: 1 }, reason: { value: '-' } };
  return resolveConfig(raw, { env: {} }).kinds.leave as AnyKindConfig;
}

async function readAll(db: TestDatabase, cfg: AnyKindConfig, pageSize: number): Promise<Array<Array<Record<string, unknown>>>> {
  const pages: Array<Array<Record<string, unknown>>> = [];
  for await (const page of iterateChanged(db.db, cfg, null, { pageSize, lookbackSeconds: 0 })) {
    pages.push(page.rows);
    if (pages.length > 50) throw new Error('the keyset does not terminate');
  }
  return pages;
}

describe.each(dialectsUnderTest())('keyset edge cases on %s', (dialect) => {
  let db: TestDatabase;
  const T = '2026-05-01 10:00:00.000000';
  beforeAll(async () => {
    db = await createTestDatabase(dialect, `extract_edges_${dialect}`);
    await db.db.schema.createTable('edge', (tb) => {
      tb.string('k', 20).primary();
      tb.string('updated_at', 32).nullable();
      tb.string('start_at', 32).notNullable();
      tb.index(['updated_at', 'k']);
    });
    await db.db.schema.createTable('nullkey', (tb) => {
      tb.string('k', 20).nullable();
      tb.string('updated_at', 32).notNullable();
      tb.string('start_at', 32).notNullable();
      tb.index(['updated_at', 'k']);
    });
    await db.db.schema.createTable('copies', (tb) => {
      tb.string('k', 20).notNullable();
      tb.integer('n').notNullable();
    });
  });
  afterAll(async () => {
    await db?.drop();
  });
  beforeEach(async () => {
    await db.db('edge').del();
    await db.db('nullkey').del();
    await db.db('copies').del();
  });

  it('a join that multiplies a key across a page boundary delivers every copy in one page', async () => {
    await db.db('edge').insert(['a', 'b', 'c', 'd', 'e'].map((k) => ({ k, updated_at: T, start_at: '2026-05-04 09:00:00' })));
    await db.db('copies').insert([...['a', 'b', 'd', 'e'].map((k) => ({ k, n: 1 })), { k: 'c', n: 1 }, { k: 'c', n: 2 }, { k: 'c', n: 3 }]);
    const cfg = kindFor({ query: 'SELECT e.k, e.updated_at, e.start_at, c.n FROM edge e JOIN copies c ON c.k = e.k' });
    const pages = await readAll(db, cfg, 3);
    const keys = pages.flat().map((r) => r.k);
    expect(keys).toEqual(['a', 'b', 'c', 'c', 'c', 'd', 'e']);
    // All three copies of c sit in one page, so the planner sees the conflict.
    expect(pages.filter((p) => p.some((r) => r.k === 'c'))).toHaveLength(1);
    // The same holds for the rescan by effective date.
    const byDate: Array<Array<Record<string, unknown>>> = [];
    for await (const rows of readByEffectiveDate(db.db, cfg, { from: '2026-05-01', to: '2026-05-31', pageSize: 3 })) byDate.push(rows);
    expect(byDate.flat().map((r) => r.k)).toEqual(['a', 'b', 'c', 'c', 'c', 'd', 'e']);
    expect(byDate.filter((p) => p.some((r) => r.k === 'c'))).toHaveLength(1);
  });

  it('NULL keys neither restart nor stall the keyset: each row is read once, wherever a page ends', async () => {
    const T2 = '2026-05-01 11:00:00.000000';
    await db.db('nullkey').insert([
      { k: null, updated_at: T, start_at: '2026-05-04 09:00:00' },
      { k: null, updated_at: T, start_at: '2026-05-04 09:00:00' },
      { k: 'a', updated_at: T, start_at: '2026-05-04 09:00:00' },
      { k: 'b', updated_at: T, start_at: '2026-05-04 09:00:00' },
      { k: null, updated_at: T2, start_at: '2026-05-04 09:00:00' },
      { k: 'c', updated_at: T2, start_at: '2026-05-04 09:00:00' },
      { k: null, updated_at: '2026-05-01 12:00:00.000000', start_at: '2026-05-04 09:00:00' },
    ]);
    const cfg = kindFor({ table: 'nullkey' });
    // Keyless rows come at most a page at a time per page (here: never more than 2 in a range).
    for (const size of [2, 3, 4, 7, 100]) {
      const rows = (await readAll(db, cfg, size)).flat();
      expect([rows.length, rows.filter((r) => r.k === null).length, rows.filter((r) => r.k !== null).map((r) => r.k)]).toEqual([7, 4, ['a', 'b', 'c']]);
      const byDate: Array<Record<string, unknown>> = [];
      for await (const page of readByEffectiveDate(db.db, cfg, { from: '2026-05-01', to: '2026-05-31', pageSize: size })) {
        byDate.push(...page);
        if (byDate.length > 50) throw new Error('the rescan keyset does not terminate');
      }
      expect([byDate.length, byDate.filter((r) => r.k === null).length, byDate.filter((r) => r.k !== null).map((r) => r.k)]).toEqual(size >= 4 ? [7, 4, ['a', 'b', 'c']] : [3 + size, size, ['a', 'b', 'c']]);
    }
    // Pages of one row: still every keyed row once, and the read ends.
    expect((await readAll(db, cfg, 1)).flat().filter((r) => r.k !== null).map((r) => r.k)).toEqual(['a', 'b', 'c']);
  });

  it('text keys with leading zeros are compared as text: none is skipped', async () => {
    await db.db('edge').insert(['001', '002', '003', '010', '02'].map((k) => ({ k, updated_at: T, start_at: '2026-05-04 09:00:00' })));
    const pages = await readAll(db, kindFor({ table: 'edge' }), 1);
    expect(pages.flat().map((r) => r.k)).toEqual(['001', '002', '003', '010', '02']);
  });

  it('a NULL cursor neither restarts nor stalls the keyset; the rescan still reads the row', async () => {
    await db.db('edge').insert([
      { k: 'n1', updated_at: null, start_at: '2026-05-04 09:00:00' },
      { k: 'x1', updated_at: T, start_at: '2026-05-04 09:00:00' },
      { k: 'x2', updated_at: '2026-05-01 11:00:00.000000', start_at: '2026-05-04 09:00:00' },
    ]);
    const cfg = kindFor({ table: 'edge' });
    const pages = await readAll(db, cfg, 1);
    expect(pages.flat().map((r) => r.k)).toEqual(['x1', 'x2']);
    const byDate: string[] = [];
    for await (const rows of readByEffectiveDate(db.db, cfg, { from: '2026-05-01', to: '2026-05-31', pageSize: 1 })) byDate.push(...rows.map((r) => String(r.k)));
    expect(byDate).toEqual(['n1', 'x1', 'x2']);
  });
});
