import { createTestDatabase, dialectsUnderTest } from './helpers/databases.js';
import { dialectFor } from '../src/db/dialect.js';

describe.each(dialectsUnderTest())('database connection on %s', (dialect) => {
  it('creates a throw-away database, reads a zone-less timestamp as its own string, and drops it', async () => {
    const t = await createTestDatabase(dialect, 'connect');
    try {
      expect(dialectFor(t.db).name).toBe(dialect);
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

describe('SQLite files', () => {
  it('a new database and its -wal and -shm files are readable by the owner only (0600)', async () => {
    const fs = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const { connect } = await import('../src/db/connect.js');
    const { migrateLatest } = await import('../src/state/migrate.js');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'modes-'));
    const file = path.join(dir, 'state.sqlite');
    const db = connect(`sqlite:${file}`);
    try {
      await migrateLatest(db, 'attendance_sync_');
      await db('attendance_sync_runs').insert({ type: 'cycle', started_at: Date.now(), outcome: 'running', host: 'h', pid: 1 });
      const mode = (f: string) => (fs.statSync(f).mode & 0o777).toString(8);
      expect(fs.existsSync(`${file}-wal`)).toBe(true);
      expect(fs.existsSync(`${file}-shm`)).toBe(true);
      expect({ db: mode(file), wal: mode(`${file}-wal`), shm: mode(`${file}-shm`) }).toEqual({ db: '600', wal: '600', shm: '600' });
    } finally {
      await db.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
