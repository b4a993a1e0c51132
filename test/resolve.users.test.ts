import { DateTime } from 'luxon';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { testPipeline } from './helpers/pipeline.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import type { DirectoryUser } from '../src/emulator/options.js';
import { resolveConfig } from '../src/config/load.js';
import { runCycle } from '../src/pipeline/cycle.js';
import { migrateLatest } from '../src/state/migrate.js';
import { stateTables } from '../src/state/tables.js';
import { normalizeAddress, resolutionFigures } from '../src/resolve/users.js';

/**
 * fields.user_id with `resolve: email`: a source that knows its employees only by e-mail,
 * resolved through the emulator's contact/v3/users/batch_get_id. Judged by what the emulator
 * holds (user, kind, start, end) against the source.
 */
const T = stateTables('attendance_sync_');
const N = 120;

function directory(): DirectoryUser[] {
  const users: DirectoryUser[] = [];
  for (let i = 1; i <= N; i++) users.push({ user_id: `u${String(i).padStart(3, '0')}`, email: `staff${i}@corp.example` });
  users.push({ user_id: 'u_gone', email: 'left@corp.example', resigned: true });
  return users;
}

describe('addresses as they are asked for', () => {
  it('lower-cases and trims e-mails, strips spaces and dashes from mobiles, refuses what is neither', () => {
    expect(normalizeAddress('email', '  Ann.Lee@Corp.Example ')).toBe('ann.lee@corp.example');
    expect(normalizeAddress('email', 'not an address')).toBeNull();
    expect(normalizeAddress('mobile', '+86 138-0013-8000')).toBe('+8613800138000');
    expect(normalizeAddress('mobile', '(0852) 9123 4567')).toBe('085291234567');
    expect(normalizeAddress('mobile', 13800138000)).toBe('13800138000');
    expect(normalizeAddress('mobile', 'call me')).toBeNull();
  });
});

describe.each(dialectsUnderTest())('employees resolved by e-mail on %s', (dialect) => {
  let db: TestDatabase;
  let emu: Emulator;
  let nextId = 1;
  const day = DateTime.now().setZone('UTC').minus({ days: 3 }).startOf('day');
  const written = DateTime.now().setZone('UTC').minus({ hours: 1 }).toFormat('yyyy-MM-dd HH:mm:ss');

  async function addLeave(email: string, offsetDays = 0): Promise<number> {
    const id = nextId++;
    const d = day.minus({ days: offsetDays });
    await db.db('hr_leave').insert({
      id,
      work_email: email,
      leave_code: 'ANNUAL',
      date_from: d.set({ hour: 9 }).toFormat('yyyy-MM-dd HH:mm:ss'),
      date_to: d.set({ hour: 18 }).toFormat('yyyy-MM-dd HH:mm:ss'),
      state: 'validate',
      write_date: written,
    });
    return id;
  }

  beforeAll(async () => {
    db = await createTestDatabase(dialect, `resolve_${dialect}`);
    await db.db.schema.createTable('hr_leave', (tb) => {
      tb.integer('id').primary();
      tb.string('work_email', 191).nullable();
      tb.string('leave_code', 20).notNullable();
      tb.datetime('date_from').notNullable();
      tb.datetime('date_to').notNullable();
      tb.string('state', 20).notNullable();
      tb.datetime('write_date').notNullable();
    });
    await migrateLatest(db.db, 'attendance_sync_');
    emu = await startEmulator({ strict: true, rateLimit: 500, directory: directory() });
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  function pipeline() {
    const config = resolveConfig(
      {
        feishu: { app_id: 'x', app_secret: 'y', retry_base_ms: 20, retry_max_ms: 100, timeout_ms: 3000, time_zone: 'UTC' },
        source: { url: db.url, time_zone: 'UTC' },
        sync: { lookback_seconds: 0 },
        log: { level: 'warn', format: 'json' },
        kinds: {
          leave: {
            source: { table: 'hr_leave' },
            key: 'id',
            cursor: { mode: 'updated_at', column: 'write_date' },
            status: { column: 'state', approved: ['validate'], revoked: ['refuse', 'cancel'] },
            fields: {
              user_id: { column: 'work_email', resolve: 'email' },
              start_time: 'date_from',
              end_time: 'date_to',
              type: 'leave_code',
              unit: { value: 2 },
              reason: { value: 'leave' },
            },
            types: { ANNUAL: { uniq_id: 'ANNUAL', names: { ch: '年假' } } },
          },
        },
      },
      { env: { FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: emu.appId, FEISHU_APP_SECRET: emu.appSecret } },
    );
    return testPipeline(db, config);
  }

  const held = () =>
    emu
      .ledger()
      .filter((e) => e.status === 2)
      .map((e) => `${e.userId}|${String(e.item.start_time)}`)
      .sort();
  const invalidReasons = async (id: number) => {
    const r = (await db.db(T.records).where({ kind: 'leave', source_key: String(id) }).first()) as { state: string; reasons: string | null } | undefined;
    return r ? { state: r.state, reasons: r.reasons ?? '' } : undefined;
  };

  it('batches at 50, caches, marks the unknown invalid until the TTL, flags resigned users and re-resolves after 1220004', async () => {
    const p = pipeline();
    // 120 staff, a resigned one, an address Feishu does not know, and a cancelled row whose address is unknown too.
    for (let i = 1; i <= N; i++) await addLeave(`Staff${i}@Corp.Example `);
    await addLeave('left@corp.example');
    const unknown = await addLeave('newhire@corp.example');
    const cancelled = await addLeave('ghost@corp.example');
    await db.db('hr_leave').where({ id: cancelled }).update({ state: 'cancel' });

    const first = await runCycle(p.deps);
    expect(first.outcome).toBe('ok');
    const c1 = emu.stats().contact;
    expect(c1.maxEmails).toBe(50);
    expect(c1.calls).toBe(3); // 122 addresses: 50 + 50 + 22; the cancelled row asks nothing
    expect(c1.emails).toBe(122);
    const wantFirst = [...Array.from({ length: N }, (_, i) => `u${String(i + 1).padStart(3, '0')}`), 'u_gone'].map((u) => `${u}|${day.toFormat('yyyy-MM-dd')} 09:00:00`).sort();
    expect(held()).toEqual(wantFirst);
    expect(await invalidReasons(unknown)).toEqual({ state: 'invalid', reasons: expect.stringContaining('e-mail newhire@corp.example not found in Feishu') });
    expect((await invalidReasons(cancelled))?.state).not.toBe('invalid'); // cancelled, never sent: nothing to resolve or record
    // Contact calls are outside the monthly quota: only attendance calls are counted.
    expect(Object.values(emu.stats().quotaUsed).reduce((a, b) => a + b, 0)).toBe(N + 1);

    // Resigned users resolve (include_resigned) and are flagged for `status`.
    const figures = await resolutionFigures(db.db, T);
    expect(figures).toMatchObject({ resolved: N + 1, notFound: 1, resigned: 1, resignedUsers: ['u_gone'] });

    // Cache: a new leave of a known address asks Feishu nothing.
    await addLeave('staff7@corp.example', 1);
    await runCycle(p.deps);
    expect(emu.stats().contact.calls).toBe(3);
    expect(held()).toContain(`u007|${day.minus({ days: 1 }).toFormat('yyyy-MM-dd')} 09:00:00`);

    // The new hire joins Feishu: within the TTL the cached "not found" stands …
    emu.setOptions({ directory: [...directory(), { user_id: 'u_new', email: 'newhire@corp.example' }] });
    await runCycle(p.deps);
    expect(emu.stats().contact.calls).toBe(3);
    expect((await invalidReasons(unknown))?.state).toBe('invalid');
    // … and once it has passed (the answer is 25 h old), the record is judged again and sent.
    await db.db(T.userResolution).whereNull('user_id').update({ resolved_at: db.db.raw('resolved_at - ?', [25 * 3_600_000]) });
    const later = await runCycle(p.deps);
    expect(later.outcome).toBe('ok');
    expect(emu.stats().contact.calls).toBe(4);
    expect((await invalidReasons(unknown))?.state).toBe('active');
    expect(held()).toContain(`u_new|${day.toFormat('yyyy-MM-dd')} 09:00:00`);

    // staff5's account is re-created under a new id; the cached id is refused with 1220004 …
    emu.setOptions({
      directory: [...directory().filter((u) => u.user_id !== 'u005'), { user_id: 'u905', email: 'staff5@corp.example' }, { user_id: 'u_new', email: 'newhire@corp.example' }],
    });
    const moved = await addLeave('staff5@corp.example', 2);
    const refused = await runCycle(p.deps);
    expect(refused.send.failed).toBe(1);
    expect(held().some((h) => h.startsWith('u905|'))).toBe(false);
    // … so the next cycle drops that answer, asks again, and sends the leave to the new id.
    const again = await runCycle(p.deps);
    expect(again.outcome).toBe('ok');
    expect(held()).toContain(`u905|${day.minus({ days: 2 }).toFormat('yyyy-MM-dd')} 09:00:00`);
    expect((await db.db(T.records).where({ kind: 'leave', source_key: String(moved) }).first())?.user_id).toBe('u905');
    // Nothing judged again in a quiet cycle.
    const calls = emu.stats().contact.calls;
    await runCycle(p.deps);
    expect(emu.stats().contact.calls).toBe(calls);
  });
});
