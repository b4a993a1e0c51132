import { createTestDatabase, dialectsUnderTest } from './helpers/databases.js';
import { dialectOf } from '../src/db/connect.js';

describe.each(dialectsUnderTest())('database connection on %s', (dialect) => {
  it('creates a throw-away database, reads a zone-less timestamp as its own string, and drops it', async () => {
    const t = await createTestDatabase(dialect, 'connect');
    try {
      expect(dialectOf(t.db)).toBe(dialect);
      await t.db.schema.createTable('ts_probe', (tb) => {
        tb.increments('id');
        tb.specificType('at', dialect === 'pg' ? 'timestamp(6)' : dialect === 'mysql' ? 'datetime(6)' : 'text');
      });
      await t.db('ts_probe').insert({ at: '2026-03-01 08:30:00.123456' });
      const row = await t.db('ts_probe').first('at');
      expect(row.at).toBe('2026-03-01 08:30:00.123456');
    } finally {
      await t.drop();
    }
  });
});
