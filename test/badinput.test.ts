import { DateTime } from 'luxon';
import type { Knex } from 'knex';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { activeInLedger, diffLedger, expectedFromSource, prepareSample, sampleConfig, testPipeline } from './helpers/pipeline.js';
import { startEmulator, type Emulator, type LedgerEntry } from '../src/emulator/index.js';
import { runCycle } from '../src/pipeline/cycle.js';
import { sqlTime } from '../src/sample/index.js';
import { stateTables } from '../src/state/tables.js';
import type { DialectName } from '../src/db/url.js';
import type { Kind } from '../src/kinds.js';

/*
 * The bad-input corpus: hostile and broken rows of all four kinds, inserted into the sample
 * HR schema on every database, each next to a good row, synced by ONE cycle against a strict
 * emulator that knows a fixed list of users. Every case must end in exactly one of:
 *   - sent, and in Feishu exactly as expected;
 *   - `invalid` in the sync table, with a reason naming the field or the problem;
 *   - `failed` with Feishu's code (an employee Feishu does not know).
 * Around them every good row must be synced, the cycle must not throw, and a second cycle
 * must plan, send and log nothing new.
 *
 * Some values cannot live in the typed sample tables (Feb 30 in a timestamp column, NULL in a
 * NOT NULL column, 1 MB in a MySQL TEXT column). Where a database refuses a row, the test
 * asserts the refusal and feeds the same values through `leave_imports`, a loosely typed
 * staging table of the kind legacy systems fill from spreadsheets, which the leave source
 * query reads with UNION ALL. What no table of a database can hold (a NUL character in
 * PostgreSQL text) never reaches the mapper there: only the refusal is asserted.
 */

const t = stateTables('attendance_sync_');

/** Employees besides the seeded E00001…E00012 (all known to Feishu). */
const EXTRA_EMPLOYEES = [
  { id: 101, employee_no: 'E09001   ' }, // CHAR-style padding
  { id: 102, employee_no: 'E0\u00019002' }, // a control character; Feishu does know "E09002"
  { id: 103, employee_no: 'E09003\u200B' }, // a zero-width space; Feishu does know "E09003"
  { id: 104, employee_no: 'E09999' }, // HR knows this person, Feishu does not
] as const;
const SEEDED_EMPLOYEES = 12;
const employeeNo = (id: number): string | null =>
  id >= 1 && id <= SEEDED_EMPLOYEES ? `E${String(id).padStart(5, '0')}` : (EXTRA_EMPLOYEES.find((e) => e.id === id)?.employee_no ?? null);
const FEISHU_USERS = [...Array.from({ length: SEEDED_EMPLOYEES }, (_, i) => employeeNo(i + 1)!), 'E09001', 'E09002', 'E09003'];

const TABLES: Record<Kind, string> = { leave: 'leave_requests', overtime: 'overtime_requests', trip: 'trip_requests', out: 'out_requests' };

type Row = Record<string, unknown>;

/** A good row of each kind; cases override columns of it. */
function template(kind: Kind, i: number): Row {
  const day = DateTime.fromISO('2026-04-06', { zone: 'UTC' }).plus({ days: i % 40 }).toFormat('yyyy-MM-dd');
  const employee_id = 1 + (i % SEEDED_EMPLOYEES);
  switch (kind) {
    case 'leave':
      return { employee_id, leave_type_code: 'ANNUAL', start_at: `${day} 09:00:00`, end_at: `${day} 18:00:00`, duration: 1, reason: '年假', status: 'approved', deleted_at: null };
    case 'overtime':
      return { employee_id, start_at: `${day} 18:00:00`, end_at: `${day} 21:00:00`, hours: 3, day_type: 'WORKDAY', compensation: 'PAY', reason: '版本上线', status: 'approved', deleted_at: null };
    case 'trip':
      return {
        employee_id,
        start_at: `${day} 00:00:00`,
        end_at: `${day} 23:59:59`,
        destination: '6863333418483058189',
        transport: 'TRAIN',
        round_trip: true,
        reason: '客户现场支持',
        applied_at: '2026-04-01 10:00:00',
        approved_at: '2026-04-01 15:00:00',
        status: 'approved',
        deleted_at: null,
      };
    case 'out':
      return { employee_id, out_type: 'CLIENT', start_at: `${day} 14:00:00`, end_at: `${day} 16:00:00`, hours: 2, reason: '拜访客户', status: 'approved', is_deleted: 0 };
  }
}

type Expectation =
  | { readonly sent: Row; readonly userId?: string; readonly check?: (item: Row) => void }
  | { readonly invalid: RegExp }
  | { readonly failed: number };

interface Case {
  readonly name: string;
  readonly kind: Kind;
  readonly row: Row;
  /** Databases whose typed sample table refuses the row: the insert must fail there. */
  readonly refusedBy?: readonly DialectName[];
  /** Leave rows only: always through the text-typed staging table, or when the typed table refuses. */
  readonly imports?: 'always' | 'when-refused';
  /** Destination rows a careless join multiplies the trip by. */
  readonly destinations?: readonly string[];
  /**
   * Older than every other row of its kind, so it is read in the first page of the first
   * cycle and not re-read by the lookback. The copies of a multiplied key must share a page:
   * the keyset cursor (updated_at, key) steps over a copy a page boundary separates.
   */
  readonly early?: boolean;
  readonly expect: Expectation;
}

const sent = (item: Row, more: { userId?: string; check?: (item: Row) => void } = {}): Expectation => ({ sent: item, ...more });
const invalid = (re: RegExp): Expectation => ({ invalid: re });
const failed = (code: number): Expectation => ({ failed: code });

const MB_REASON = '病假😷'.repeat(110_000); // 1.1 MB of UTF-8
const FAMILY = '👨‍👩‍👧‍👦';
const SQL_TEXT = `Robert'); DROP TABLE leave_requests;-- \\ "q" % _ ? $1 :name \\N /* */ \`x\``;

const CASES: readonly Case[] = [
  // leave: nulls, spans, impossible times
  { name: 'leave: NULL reason takes the configured default', kind: 'leave', row: { reason: null }, expect: sent({ reason: '无' }) },
  { name: 'leave: employee_id without an employee row (the LEFT JOIN yields NULL)', kind: 'leave', row: { employee_id: 4242 }, expect: invalid(/fields\.user_id \(column employee_no\): is empty/) },
  { name: 'leave: employee Feishu does not know', kind: 'leave', row: { employee_id: 104 }, expect: failed(1220004) },
  { name: 'leave: end before start', kind: 'leave', row: { start_at: '2026-04-08 09:00:00', end_at: '2026-04-07 18:00:00' }, expect: invalid(/end_time is before start_time/) },
  { name: 'leave: zero-length span', kind: 'leave', row: { start_at: '2026-04-08 09:00:00', end_at: '2026-04-08 09:00:00' }, expect: invalid(/end_time equals start_time \(a zero-length record\)/) },
  { name: 'leave: 400-day span', kind: 'leave', row: { start_at: '2026-04-08 09:00:00', end_at: '2027-05-13 18:00:00' }, expect: invalid(/the span is longer than 366 days/) },
  {
    name: 'leave: Feb 30',
    kind: 'leave',
    row: { start_at: '2026-02-30 09:00:00', end_at: '2026-03-02 18:00:00' },
    refusedBy: ['pg', 'mysql'],
    imports: 'when-refused',
    expect: invalid(/fields\.start_time \(column start_at\): "2026-02-30 09:00:00" is not a real date or time/),
  },
  {
    name: 'leave: hour 25',
    kind: 'leave',
    row: { end_at: '2026-04-09 25:00:00' },
    refusedBy: ['pg', 'mysql'],
    imports: 'when-refused',
    expect: invalid(/fields\.end_time \(column end_at\): "2026-04-09 25:00:00" is not a real date or time/),
  },
  {
    name: 'leave: words where a timestamp belongs',
    kind: 'leave',
    row: { start_at: 'next Tuesday' },
    refusedBy: ['pg', 'mysql'],
    imports: 'when-refused',
    expect: invalid(/fields\.start_time \(column start_at\): "next Tuesday" is not a timestamp/),
  },
  {
    name: 'leave: NULL start_at',
    kind: 'leave',
    row: { start_at: null },
    refusedBy: ['pg', 'mysql', 'sqlite'],
    imports: 'when-refused',
    expect: invalid(/fields\.start_time \(column start_at\): is empty/),
  },
  { name: 'leave: MySQL zero date', kind: 'leave', row: { end_at: '0000-00-00 00:00:00' }, imports: 'always', expect: invalid(/fields\.end_time \(column end_at\): "0000-00-00 00:00:00" is not a real date or time/) },
  {
    name: 'leave: 1900-01-01 placeholder times',
    kind: 'leave',
    row: { start_at: '1900-01-01 09:00:00', end_at: '1900-01-01 18:00:00' },
    expect: invalid(/fields\.start_time \(column start_at\): "1900-01-01 09:00:00(\.0+)?" is before 2000-01-01/),
  },
  { name: 'leave: year typed as 2062', kind: 'leave', row: { end_at: '2062-04-10 18:00:00' }, expect: invalid(/fields\.end_time \(column end_at\): "2062-04-10 18:00:00(\.0+)?" is more than \d+ days in the future/) },
  { name: 'leave: negative duration', kind: 'leave', row: { duration: -1 }, expect: invalid(/fields\.interval \(column duration_hours\): "-8(\.0+)?" is not a non-negative number/) },
  // leave: type codes
  { name: 'leave: unknown type code', kind: 'leave', row: { leave_type_code: 'XYZ' }, expect: invalid(/fields\.type: unknown type code "XYZ" \(not in kinds\.leave\.types\)/) },
  { name: 'leave: type code "constructor" (an Object.prototype member)', kind: 'leave', row: { leave_type_code: 'constructor' }, expect: invalid(/fields\.type: unknown type code "constructor"/) },
  { name: 'leave: empty type code', kind: 'leave', row: { leave_type_code: '' }, expect: invalid(/fields\.type \(column leave_type_code\): is empty/) },
  // leave: text
  {
    name: 'leave: 1 MB reason is cut to 1000 characters',
    kind: 'leave',
    row: { reason: MB_REASON },
    refusedBy: ['mysql'],
    imports: 'when-refused',
    expect: sent(
      {},
      {
        check: (item) => {
          const reason = String(item.reason);
          expect(Array.from(reason)).toHaveLength(1000);
          expect(reason.endsWith('…')).toBe(true);
          expect(MB_REASON.startsWith(reason.slice(0, -1))).toBe(true);
        },
      },
    ),
  },
  {
    name: 'leave: long run of ZWJ family emoji is cut between graphemes',
    kind: 'leave',
    row: { reason: FAMILY.repeat(1500) },
    expect: sent(
      {},
      {
        check: (item) => {
          const reason = String(item.reason);
          expect(Array.from(reason).length).toBeLessThanOrEqual(1000);
          const graphemes = [...new Intl.Segmenter('und', { granularity: 'grapheme' }).segment(reason)].map((s) => s.segment);
          expect(graphemes.at(-1)).toBe('…');
          expect(new Set(graphemes.slice(0, -1))).toEqual(new Set([FAMILY]));
        },
      },
    ),
  },
  { name: 'leave: control characters, CRLF and emoji in the reason', kind: 'leave', row: { reason: 'sick\u0001\u0007\u001b[31m 😷🤒\r\nday\u0085\u007f' }, expect: sent({ reason: 'sick[31m 😷🤒\nday' }) },
  { name: 'leave: NUL character in the reason', kind: 'leave', row: { reason: 'half\u0000day 😷' }, refusedBy: ['pg'], expect: sent({ reason: 'halfday 😷' }) },
  { name: 'leave: SQL metacharacters in the reason arrive verbatim', kind: 'leave', row: { reason: SQL_TEXT }, expect: sent({ reason: SQL_TEXT }) },
  // leave: through the staging table only
  { name: 'leave: employee number of 200 characters', kind: 'leave', row: { employee_no: `E${'7'.repeat(199)}` }, imports: 'always', expect: invalid(/fields\.user_id \(column employee_no\): longer than 128 characters/) },
  {
    name: 'leave: timestamps with an explicit UTC offset',
    kind: 'leave',
    row: { start_at: '2026-04-20T01:00:00Z', end_at: '2026-04-20T10:00:00+00:00' },
    imports: 'always',
    expect: sent({ start_time: '2026-04-20 09:00:00', end_time: '2026-04-20 18:00:00' }),
  },
  {
    name: 'leave: three problems at once, all reported',
    kind: 'leave',
    row: { employee_no: null, leave_type_code: 'XYZ', start_at: '2026-04-21 09:00:00', end_at: '2026-04-20 18:00:00' },
    imports: 'always',
    expect: invalid(/(?=.*fields\.user_id \(column employee_no\): is empty)(?=.*unknown type code "XYZ")(?=.*end_time is before start_time)/s),
  },

  // overtime
  { name: 'overtime: unknown compensation code', kind: 'overtime', row: { compensation: 'BONUS' }, expect: invalid(/fields\.type \(column compensation\): unknown value "BONUS" \(not in its map\)/) },
  { name: 'overtime: unknown day type', kind: 'overtime', row: { day_type: 'MOONDAY' }, expect: invalid(/fields\.category \(column day_type\): unknown value "MOONDAY"/) },
  { name: 'overtime: empty day type', kind: 'overtime', row: { day_type: '' }, expect: invalid(/fields\.category \(column day_type\): is empty/) },
  { name: 'overtime: negative hours', kind: 'overtime', row: { hours: -2 }, expect: invalid(/fields\.duration \(column hours\): "-2(\.0+)?" is not a non-negative number/) },
  { name: 'overtime: end before start', kind: 'overtime', row: { start_at: '2026-04-10 21:00:00', end_at: '2026-04-10 18:00:00' }, expect: invalid(/end_time is before start_time/) },
  { name: 'overtime: NULL reason is left out (optional for overtime)', kind: 'overtime', row: { reason: null }, expect: sent({ duration: 3, category: 1, type: 2 }, { check: (item) => expect(item).not.toHaveProperty('reason') }) },
  { name: 'overtime: markup and SQL in the reason arrive verbatim', kind: 'overtime', row: { reason: '<script>alert(1)</script> OR 1=1; --' }, expect: sent({ reason: '<script>alert(1)</script> OR 1=1; --' }) },

  // trip
  { name: 'trip: NULL approval time', kind: 'trip', row: { approved_at: null }, expect: invalid(/fields\.approve_pass_time \(column approved_at\): is empty/) },
  { name: 'trip: unknown transport', kind: 'trip', row: { transport: 'PLANE,ROCKET' }, expect: invalid(/fields\.transportation: unknown value "ROCKET"/) },
  { name: 'trip: transport list with full-width and mixed separators', kind: 'trip', row: { transport: 'PLANE，TRAIN; HSR' }, expect: sent({ transportation: [1, 2, 4] }) },
  { name: 'trip: NULL reason takes the configured default', kind: 'trip', row: { reason: null }, expect: sent({ reason: '出差' }) },
  { name: 'trip: 400-day trip', kind: 'trip', row: { start_at: '2026-04-11 00:00:00', end_at: '2027-05-16 23:59:59' }, expect: invalid(/the span is longer than 366 days/) },
  { name: 'trip: region id longer than 64 characters', kind: 'trip', row: { destination: '6'.repeat(80) }, expect: invalid(/fields\.destination_region_ids \(column destination\): longer than 64 characters/) },
  {
    name: 'trip: a join that multiplies the row with different values (duplicate source key)',
    kind: 'trip',
    row: {},
    destinations: ['6863333418483058190', '6863333418483058191'],
    early: true,
    expect: invalid(/the source returned 2 different rows for key \d+ \(does a join multiply rows\?\)/),
  },
  {
    name: 'trip: a join that multiplies the row identically is sent once',
    kind: 'trip',
    row: {},
    destinations: ['6863333418483058192', '6863333418483058192'],
    early: true,
    expect: sent({ destinations: [{ region_level: 'l3', region_id: '6863333418483058192' }] }),
  },

  // out
  { name: 'out: unknown out type', kind: 'out', row: { out_type: 'SPA' }, expect: invalid(/fields\.type: unknown type code "SPA" \(not in kinds\.out\.types\)/) },
  { name: 'out: type code "__proto__"', kind: 'out', row: { out_type: '__proto__' }, expect: invalid(/fields\.type: unknown type code "__proto__"/) },
  { name: 'out: reason of nothing but control characters takes the default', kind: 'out', row: { reason: '\u0001\u0002\u0003' }, expect: sent({ reason: '外出' }) },
  { name: 'out: whitespace-only reason takes the default', kind: 'out', row: { reason: ' \t ' }, expect: sent({ reason: '外出' }) },
  { name: 'out: employee number padded with spaces', kind: 'out', row: { employee_id: 101 }, expect: sent({}, { userId: 'E09001' }) },
  { name: 'out: employee number with a control character is never cleaned into another id', kind: 'out', row: { employee_id: 102 }, expect: invalid(/fields\.user_id \(column employee_no\): "E0\\u00019002" contains a control or invisible character/) },
  { name: 'out: employee number with a zero-width space', kind: 'out', row: { employee_id: 103 }, expect: invalid(/fields\.user_id \(column employee_no\): "E09003\\u200b" contains a control or invisible character/) },
  { name: 'out: end before start', kind: 'out', row: { start_at: '2026-04-12 16:00:00', end_at: '2026-04-12 14:00:00' }, expect: invalid(/end_time is before start_time/) },
];

function tsType(dialect: DialectName): string {
  return dialect === 'pg' ? 'timestamp(6)' : dialect === 'mysql' ? 'datetime(6)' : 'text';
}

/** The legacy tables the corpus needs beside the sample schema. */
async function createCorpusTables(db: Knex, dialect: DialectName): Promise<void> {
  await db.schema.createTable('leave_imports', (tb) => {
    tb.integer('id').primary();
    tb.string('employee_no', 255).nullable();
    tb.string('leave_type_code', 64).nullable();
    tb.string('start_at', 64).nullable();
    tb.string('end_at', 64).nullable();
    tb.decimal('duration', 8, 2).nullable();
    tb.text('reason', 'longtext').nullable();
    tb.string('status', 16).notNullable();
    tb.specificType('deleted_at', tsType(dialect)).nullable();
    tb.specificType('updated_at', tsType(dialect)).notNullable();
  });
  await db.schema.createTable('trip_destinations', (tb) => {
    tb.integer('trip_id').notNullable();
    tb.string('region_id', 64).notNullable();
  });
}

/** The example leave query, plus the staging table; timestamps as text so both halves agree. */
function leaveQuery(dialect: DialectName): string {
  const text = (col: string) => (dialect === 'pg' ? `CAST(${col} AS TEXT)` : dialect === 'mysql' ? `CAST(${col} AS CHAR)` : col);
  return `
    SELECT r.id, e.employee_no, r.leave_type_code, t.unit AS unit_code,
           CASE t.unit WHEN 'HOUR' THEN r.duration ELSE r.duration * 8 END AS duration_hours,
           ${text('r.start_at')} AS start_at, ${text('r.end_at')} AS end_at, r.reason, r.status, r.deleted_at, r.updated_at
      FROM leave_requests r
      LEFT JOIN employees e ON e.id = r.employee_id
      LEFT JOIN leave_types t ON t.code = r.leave_type_code
    UNION ALL
    SELECT i.id, i.employee_no, i.leave_type_code, t.unit AS unit_code,
           CASE t.unit WHEN 'HOUR' THEN i.duration ELSE i.duration * 8 END AS duration_hours,
           i.start_at, i.end_at, i.reason, i.status, i.deleted_at, i.updated_at
      FROM leave_imports i
      LEFT JOIN leave_types t ON t.code = i.leave_type_code`;
}

/** Destinations moved to their own table, joined instead of aggregated: one row per destination. */
const TRIP_QUERY = `
  SELECT t.id, t.employee_id, t.start_at, t.end_at, COALESCE(d.region_id, t.destination) AS destination, t.transport,
         t.round_trip, t.reason, t.applied_at, t.approved_at, t.status, t.deleted_at, t.updated_at, e.employee_no
    FROM trip_requests t
    LEFT JOIN employees e ON e.id = t.employee_id
    LEFT JOIN trip_destinations d ON d.trip_id = t.id`;

function corpusConfig(db: TestDatabase, emu: Emulator) {
  return sampleConfig(db.url, emu, (raw) => {
    raw.sync.page_size = 8;
    raw.feishu.rate_limit = 500;
    raw.kinds.leave.source.query = leaveQuery(db.dialect);
    raw.kinds.trip.source.query = TRIP_QUERY;
  });
}

interface SyncRow {
  kind: string;
  source_key: string;
  operation: string;
  status: string;
  reasons: string | null;
  feishu_code: number | string | null;
  idempotency_key: string | null;
}

/** The warnings "invalid source row" in a JSON log, per kind and key. */
function invalidLogCounts(logs: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of logs.split('\n')) {
    if (!line.includes('invalid source row')) continue;
    const entry = JSON.parse(line) as { kind: string; sourceKey: string };
    const k = `${entry.kind}|${entry.sourceKey}`;
    out.set(k, (out.get(k) ?? 0) + 1);
  }
  return out;
}

interface Observed {
  readonly rows: SyncRow[];
  readonly ledger: LedgerEntry[];
  readonly byIdem: Map<string, LedgerEntry[]>;
  /** How often each kind|key was logged as invalid. */
  readonly logged: Map<string, number>;
}

async function observe(db: Knex, emu: Emulator, logs: string): Promise<Observed> {
  const rows = (await db(t.syncRecords).select('kind', 'source_key', 'operation', 'status', 'reasons', 'feishu_code', 'idempotency_key')) as SyncRow[];
  const ledger = emu.ledger();
  const byIdem = new Map<string, LedgerEntry[]>();
  for (const e of ledger) if (e.idempotentId) byIdem.set(e.idempotentId, [...(byIdem.get(e.idempotentId) ?? []), e]);
  return { rows, ledger, byIdem, logged: invalidLogCounts(logs) };
}

/** What went wrong with one case, or null when it ended as expected. */
function judge(kind: Kind, key: string, expectation: Expectation, seen: Observed): string | null {
  const mine = seen.rows.filter((x) => x.kind === kind && x.source_key === key);
  const got = JSON.stringify(mine.map((x) => ({ operation: x.operation, status: x.status, code: x.feishu_code, reasons: x.reasons })));
  const statuses = mine.map((x) => `${x.operation}:${x.status}`).join(',');
  const first = mine[0];
  if ('invalid' in expectation) {
    if (statuses !== 'create:invalid' || !first) return `expected invalid, got ${got}`;
    const reasons = (JSON.parse(first.reasons ?? '[]') as string[]).join(' | ');
    if (!expectation.invalid.test(reasons)) return `reasons ${JSON.stringify(reasons)} do not match ${String(expectation.invalid)}`;
    const times = seen.logged.get(`${kind}|${key}`) ?? 0;
    return times === 1 ? null : `logged ${times} times, not once`;
  }
  if ('failed' in expectation) {
    if (statuses !== 'create:failed' || !first || Number(first.feishu_code) !== expectation.failed) return `expected failed with ${expectation.failed}, got ${got}`;
    return seen.byIdem.has(first.idempotency_key ?? '') ? 'failed, yet Feishu holds it' : null;
  }
  if (statuses !== 'create:sent' || !first) return `expected sent, got ${got}`;
  const entries = seen.byIdem.get(first.idempotency_key ?? '') ?? [];
  const entry = entries[0];
  if (entries.length !== 1 || !entry || entry.status !== 2) return `expected one approved item in Feishu, found ${entries.length}`;
  if (expectation.userId !== undefined && entry.userId !== expectation.userId) return `user_id ${JSON.stringify(entry.userId)}, expected ${expectation.userId}`;
  try {
    expect(entry.kind).toBe(kind);
    expect(entry.item).toMatchObject(expectation.sent);
    expectation.check?.(entry.item);
  } catch (err) {
    return (err as Error).message;
  }
  return null;
}

describe('bad-input corpus', () => {
  it('has at least 30 named cases covering all four kinds', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(30);
    expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length);
    expect(new Set(CASES.map((c) => c.kind))).toEqual(new Set(['leave', 'overtime', 'trip', 'out']));
  });
});

describe.each(dialectsUnderTest())('bad-input corpus on %s', (dialect) => {
  let db: TestDatabase;
  let emu: Emulator;
  /** Source key of each case on this database; null where the database itself refuses it. */
  const keyOf = new Map<string, string | null>();
  let goodOracle: Awaited<ReturnType<typeof expectedFromSource>>;

  beforeAll(async () => {
    const now = DateTime.utc();
    db = await createTestDatabase(dialect, `badinput_${dialect}`);
    await prepareSample(db, { employees: SEEDED_EMPLOYEES, leaves: 16, overtime: 8, trips: 8, outs: 8, seed: 23, now: now.minus({ hours: 1 }) });
    await createCorpusTables(db.db, dialect);
    await db.db('employees').insert(EXTRA_EMPLOYEES.map((e) => ({ ...e, name: '测试', active: true })));
    emu = await startEmulator({ strict: true, users: FEISHU_USERS, rateLimit: 1000 });

    const stamp = sqlTime(now);
    const early = sqlTime(now.minus({ hours: 2 }));
    const withTimes = (kind: Kind, row: Row, updatedAt: string): Row => ({ ...row, ...(kind === 'leave' ? { created_at: updatedAt } : {}), updated_at: updatedAt });
    // A good row right behind every case, in the same table and page.
    for (const [i, c] of CASES.entries()) {
      await db.db(TABLES[c.kind]).insert(withTimes(c.kind, { id: 900_001 + 2 * i, ...template(c.kind, i) }, stamp));
    }
    goodOracle = await expectedFromSource(db.db);

    for (const [i, c] of CASES.entries()) {
      const id = 900_000 + 2 * i;
      const updatedAt = c.early ? early : stamp;
      const row: Row = { id, ...template(c.kind, i), ...c.row };
      const refused = c.refusedBy?.includes(dialect) ?? false;
      if (c.imports !== 'always') {
        const error = await db
          .db(TABLES[c.kind])
          .insert(withTimes(c.kind, row, updatedAt))
          .then(
            () => null,
            (err: Error) => err.message,
          );
        expect([c.name, error === null ? 'stored' : 'refused']).toEqual([c.name, refused ? 'refused' : 'stored']);
      }
      if (c.imports === 'always' || (c.imports === 'when-refused' && refused)) {
        const { employee_id, ...rest } = row;
        const staged = { employee_no: employeeNo(Number(employee_id)), ...rest, updated_at: updatedAt };
        await db.db('leave_imports').insert(staged);
        keyOf.set(c.name, String(id));
      } else keyOf.set(c.name, refused ? null : String(id));
      for (const region of c.destinations ?? []) await db.db('trip_destinations').insert({ trip_id: id, region_id: region });
    }
  });

  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  it('one cycle: every case sent as expected, invalid with its reason, or failed with Feishu\'s code; every good row synced', async () => {
    const p = testPipeline(db, corpusConfig(db, emu));
    const r = await runCycle(p.deps);
    expect(r.error).toBeUndefined();
    expect(r.outcome).toBe('partial'); // the employee Feishu does not know
    expect(r.outboxDepth).toBe(0);

    const seen = await observe(db.db, emu, p.logs());
    const problems: string[] = [];
    const corpusIdems = new Set<string>();
    for (const c of CASES) {
      const key = keyOf.get(c.name);
      if (key === null || key === undefined) continue; // the database refused it (asserted above)
      for (const x of seen.rows) if (x.kind === c.kind && x.source_key === key && x.idempotency_key) corpusIdems.add(x.idempotency_key);
      const problem = judge(c.kind, key, c.expect, seen);
      if (problem) problems.push(`${c.name} (key ${key}): ${problem}`);
    }
    expect(problems).toEqual([]);
    expect(r.send).toMatchObject({ failed: CASES.filter((c) => 'failed' in c.expect).length, dead: 0 });
    // The good rows, seeded and interleaved: exactly the oracle, nothing missing, nothing twice.
    const good = seen.ledger.filter((e) => !e.idempotentId || !corpusIdems.has(e.idempotentId));
    expect(Object.values(goodOracle).flat().length).toBeGreaterThanOrEqual(CASES.length);
    expect(diffLedger(goodOracle, activeInLedger(good))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });
  });

  it('a second cycle plans, sends and logs nothing new', async () => {
    const before = (await db.db(t.syncRecords).count({ n: '*' }).first()) as { n: number | string };
    const calls = emu.stats().calls.create;
    const p = testPipeline(db, corpusConfig(db, emu));
    const r = await runCycle(p.deps);
    expect(r.error).toBeUndefined();
    // The lookback window re-reads the corpus (all but the early rows): the invalid rows are
    // recognised as already recorded, not recorded or logged again.
    const reread = CASES.filter((c) => 'invalid' in c.expect && !c.early && keyOf.get(c.name) !== null).length;
    expect(r.plan.invalid).toBe(reread);
    expect(r.plan).toMatchObject({ created: 0, revoked: 0, superseded: 0 });
    expect(r.send.sent + r.send.failed + r.send.dead).toBe(0);
    expect(emu.stats().calls.create).toBe(calls);
    expect(p.logs()).not.toMatch(/invalid source row/);
    const after = (await db.db(t.syncRecords).count({ n: '*' }).first()) as { n: number | string };
    expect(Number(after.n)).toBe(Number(before.n));
  });
});

/*
 * Daylight saving: an HR system and an attendance group in Europe/Berlin. Leave reads wall
 * time in Berlin (interval = real elapsed time, no duration column); out reads UTC, so its
 * wall clock in Berlin can run backwards across the fall-back hour.
 */
describe.each(dialectsUnderTest())('daylight-saving times on %s', (dialect) => {
  let db: TestDatabase;
  let emu: Emulator;
  const FIRST = 950_000;

  const dstCases: ReadonlyArray<{ name: string; kind: 'leave' | 'out'; start: string; end: string; expect: Expectation }> = [
    { name: 'start in the spring-forward gap does not exist', kind: 'leave', start: '2026-03-29 02:30:00', end: '2026-03-29 09:00:00', expect: invalid(/fields\.start_time \(column start_at\): "2026-03-29 02:30:00(\.0+)?" does not exist in Europe\/Berlin \(daylight-saving gap\)/) },
    { name: 'end in the spring-forward gap does not exist', kind: 'leave', start: '2026-03-28 22:00:00', end: '2026-03-29 02:00:00', expect: invalid(/fields\.end_time \(column end_at\): "2026-03-29 02:00:00(\.0+)?" does not exist in Europe\/Berlin/) },
    { name: 'a span across the gap lasts one hour, not two', kind: 'leave', start: '2026-03-29 01:30:00', end: '2026-03-29 03:30:00', expect: sent({ start_time: '2026-03-29 01:30:00', end_time: '2026-03-29 03:30:00', interval: 3600 }) },
    { name: 'an ambiguous start is its first occurrence (summer time)', kind: 'leave', start: '2026-10-25 02:30:00', end: '2026-10-25 03:30:00', expect: sent({ start_time: '2026-10-25 02:30:00', end_time: '2026-10-25 03:30:00', interval: 7200 }) },
    { name: 'both ends ambiguous: both first occurrences', kind: 'leave', start: '2026-10-25 02:10:00', end: '2026-10-25 02:50:00', expect: sent({ start_time: '2026-10-25 02:10:00', end_time: '2026-10-25 02:50:00', interval: 2400 }) },
    { name: 'an ordinary day', kind: 'leave', start: '2026-07-01 09:00:00', end: '2026-07-01 18:00:00', expect: sent({ start_time: '2026-07-01 09:00:00', end_time: '2026-07-01 18:00:00', interval: 32400 }) },
    { name: 'UTC span whose Berlin wall clock runs backwards', kind: 'out', start: '2026-10-25 00:30:00', end: '2026-10-25 01:15:00', expect: invalid(/end_time \(2026-10-25 02:15:00\) is before start_time \(2026-10-25 02:30:00\) on the Europe\/Berlin wall clock Feishu uses/) },
    { name: 'UTC span into winter time', kind: 'out', start: '2026-10-25 00:30:00', end: '2026-10-25 02:00:00', expect: sent({ start_time: '2026-10-25 02:30:00', end_time: '2026-10-25 03:00:00' }) },
    { name: 'UTC span into summer time', kind: 'out', start: '2026-03-29 00:30:00', end: '2026-03-29 01:30:00', expect: sent({ start_time: '2026-03-29 01:30:00', end_time: '2026-03-29 03:30:00' }) },
  ];

  function dstConfig() {
    return sampleConfig(db.url, emu, (raw) => {
      raw.source.time_zone = 'Europe/Berlin';
      raw.feishu.time_zone = 'Europe/Berlin';
      delete raw.kinds.overtime;
      delete raw.kinds.trip;
      delete raw.kinds.leave.fields.interval;
      raw.kinds.out.time_zone = 'UTC';
    });
  }

  beforeAll(async () => {
    db = await createTestDatabase(dialect, `badinput_dst_${dialect}`);
    await prepareSample(db, { employees: 3, leaves: 0, overtime: 0, trips: 0, outs: 0, seed: 3 });
    emu = await startEmulator({ strict: true, users: ['E00001', 'E00002', 'E00003'], timeZone: 'Europe/Berlin' });
    const stamp = sqlTime(DateTime.utc());
    for (const [i, c] of dstCases.entries()) {
      const row = { ...template(c.kind, i), id: FIRST + i, employee_id: 1 + (i % 3), start_at: c.start, end_at: c.end, updated_at: stamp };
      await db.db(TABLES[c.kind]).insert(c.kind === 'leave' ? { ...row, created_at: stamp } : row);
    }
  });

  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  it('a nonexistent wall time is invalid naming the time; ambiguous ones resolve the same way every cycle', async () => {
    const p = testPipeline(db, dstConfig());
    const r = await runCycle(p.deps);
    expect(r.error).toBeUndefined();
    expect(r.outcome).toBe('ok');
    const seen = await observe(db.db, emu, p.logs());
    const problems = dstCases.flatMap((c, i) => {
      const problem = judge(c.kind, String(FIRST + i), c.expect, seen);
      return problem ? [`${c.name}: ${problem}`] : [];
    });
    expect(problems).toEqual([]);
    // Read again (lookback): the same instants, so the same versions; nothing new.
    const again = await runCycle(testPipeline(db, dstConfig()).deps);
    const sentCases = dstCases.filter((c) => 'sent' in c.expect).length;
    expect(again.plan).toMatchObject({ created: 0, revoked: 0, superseded: 0, unchanged: sentCases });
    expect(emu.ledger()).toHaveLength(seen.ledger.length);
  });
});
