import type { Knex } from 'knex';
import { DateTime } from 'luxon';
import type { AnyKindConfig } from '../config/schema.js';
import { ROW_PROBLEMS, type SourceRow } from '../mapping/map.js';
import { MAPPING_LIMITS } from '../mapping/limits.js';
import { dialectOf } from '../db/connect.js';
import { cursorColumn, effectiveDateColumn, fieldColumn, sourceRelation } from './relation.js';
import { idFloorKey, idLookbackStart, lookbackIds } from './idLookback.js';

/**
 * A keyset position: the cursor column's value as the source database's own string (a
 * timestamp keeps its microseconds; a JS Date would cut them and re-read or skip rows at the
 * boundary), and the key as the tie-breaker. In id mode only `key` is used.
 */
export interface Cursor {
  readonly value: string | null;
  readonly key: string | null;
}

export interface Page {
  readonly rows: SourceRow[];
  /** Position of the page's last row (null for an empty page). */
  readonly last: Cursor | null;
  /** Rows may follow: the page ended at its row limit or at its byte budget. */
  readonly more: boolean;
  /** Rows held back: their cursor time lies beyond the horizon (see `iterateChanged`). */
  readonly held?: SourceRow[];
}

/**
 * A cursor value as epoch ms: zone-less text in `zone`, text with an offset as written, a
 * Date as is. Null for numbers (epochs and version counters are not told apart) and for text
 * that is not a time.
 */
export function cursorTimeMs(value: unknown, zone: string): number | null {
  if (value instanceof Date) return value.getTime();
  if (value === null || value === undefined || typeof value === 'number' || typeof value === 'bigint') return null;
  const text = String(value).trim();
  if (/^-?\d+(\.\d+)?$/.test(text)) return null;
  let dt = DateTime.fromSQL(text, { zone });
  if (!dt.isValid) dt = DateTime.fromISO(text, { zone });
  return dt.isValid ? dt.toMillis() : null;
}

/** The source database's own clock, epoch ms: the reference for cursor times it stores. */
export async function sourceNow(db: Knex): Promise<number> {
  const dialect = dialectOf(db);
  const sql =
    dialect === 'pg'
      ? 'SELECT extract(epoch from clock_timestamp()) * 1000 AS ms'
      : dialect === 'mysql'
        ? 'SELECT UNIX_TIMESTAMP(NOW(6)) * 1000 AS ms'
        : "SELECT (julianday('now') - 2440587.5) * 86400000.0 AS ms";
  const res = (await db.raw(sql)) as unknown;
  const rows = dialect === 'pg' ? (res as { rows: Array<{ ms: unknown }> }).rows : dialect === 'mysql' ? (res as [Array<{ ms: unknown }>])[0] : (res as Array<{ ms: unknown }>);
  const ms = Number(rows[0]?.ms);
  if (!Number.isFinite(ms)) throw new Error('could not read the source database clock');
  return Math.round(ms);
}

/**
 * Bytes of mapped values one page may hold. A page ends at `sync.page_size` rows or here,
 * whichever comes first, so wide rows make short pages instead of a heap overflow: the
 * deployed heap is 192 MB, and the rows of a page live through mapping and planning.
 */
export const PAGE_BYTES = 8 * 2 ** 20;

/** Free-text fields: the mapper cuts them to `maxTextChars`; only what it can use is read. */
const TEXT_FIELDS: ReadonlySet<string> = new Set(['reason', 'remarks']);

interface Column {
  readonly name: string;
  /** What reads it, for reasons: `fields.user_id`, `status`, `deleted`. */
  readonly uses: readonly string[];
  /** Read cut to `MAPPING_LIMITS.textReadChars` (only free text is). */
  readonly cut: boolean;
  /** The keyset's own columns are read whatever their size. */
  readonly position: boolean;
}

/**
 * The columns a kind reads: key, cursor, status, soft delete and every mapped field. Never
 * `SELECT *`: a table's unmapped columns (attachments, scanned forms) may hold megabytes a row.
 */
export function mappedColumns(cfg: AnyKindConfig): Column[] {
  const position = new Set([cfg.key, cursorColumn(cfg)]);
  const uses = new Map<string, { uses: string[]; text: boolean }>();
  const use = (col: string, label: string, text: boolean) => {
    const u = uses.get(col) ?? { uses: [], text: true };
    u.uses.push(label);
    u.text &&= text;
    uses.set(col, u);
  };
  if (cfg.status) use(cfg.status.column, 'status', false);
  if (cfg.deleted) use(cfg.deleted.column, 'deleted', false);
  for (const [name, spec] of Object.entries(cfg.fields as Record<string, Parameters<typeof fieldColumn>[0]>)) {
    const col = fieldColumn(spec);
    if (col !== undefined) use(col, `fields.${name}`, TEXT_FIELDS.has(name));
  }
  const out: Column[] = [...position].map((name) => ({ name, uses: uses.get(name)?.uses ?? [], cut: false, position: true }));
  for (const [name, u] of uses) if (!position.has(name)) out.push({ name, uses: u.uses, cut: u.text, position: false });
  return out;
}

/** The SQL of a column as read: free text cut to what the mapper can use. */
function columnSql(db: Knex, c: Column): { sql: string; bindings: string[] } {
  if (!c.cut) return { sql: '??', bindings: [c.name] };
  const n = MAPPING_LIMITS.textReadChars;
  const d = dialectOf(db);
  // Characters, not bytes, on every dialect; PostgreSQL needs text for substr.
  if (d === 'pg') return { sql: `substr(CAST(?? AS text), 1, ${n})`, bindings: [c.name] };
  if (d === 'mysql') return { sql: `SUBSTRING(??, 1, ${n})`, bindings: [c.name] };
  // SQLite's substr stops at a NUL character: only a long value is cut, and as bytes (a
  // character split at the end lies far beyond what the mapper keeps).
  return { sql: `CASE WHEN length(CAST(?? AS BLOB)) > ${4 * n} THEN CAST(substr(CAST(?? AS BLOB), 1, ${4 * n}) AS TEXT) ELSE ?? END`, bindings: [c.name, c.name, c.name] };
}

function selectList(db: Knex, cfg: AnyKindConfig): Array<string | Knex.Raw> {
  return mappedColumns(cfg).map((c) => {
    if (!c.cut) return c.name;
    const e = columnSql(db, c);
    return db.raw(`${e.sql} AS ??`, [...e.bindings, c.name]);
  });
}

/** Byte length of a value as read, on any column type (NULL for NULL). */
function lengthSql(db: Knex, e: { sql: string; bindings: string[] }, alias: string): Knex.Raw {
  const d = dialectOf(db);
  const sql = d === 'pg' ? `octet_length(CAST(${e.sql} AS text))` : d === 'mysql' ? `LENGTH(${e.sql})` : `length(CAST(${e.sql} AS BLOB))`;
  return db.raw(`${sql} AS ??`, [...e.bindings, alias]);
}

/** What a page probe reads per row: its position and the byte length of each mapped value. */
function probeList(db: Knex, cfg: AnyKindConfig): Array<string | Knex.Raw> {
  const cols = mappedColumns(cfg);
  const positions = cols.filter((c) => c.position).map((c) => c.name);
  return [...positions, ...cols.map((c, i) => lengthSql(db, columnSql(db, c), `__len${i}`))];
}

/**
 * Which probed rows the page takes: rows in order until their mapped values pass `budget`
 * (at least one row), never cutting a run of rows with one position (the keyset could not
 * resume inside it). A value above `maxValueBytes` is not read at all: its row comes back
 * with the problem attached, and the mapper records it as invalid.
 */
function cutProbe(cfg: AnyKindConfig, probe: SourceRow[], budget: number): { take: number; oversized: Map<number, string[]> } {
  const cols = mappedColumns(cfg);
  const col = cursorColumn(cfg);
  const max = MAPPING_LIMITS.maxValueBytes;
  const oversized = new Map<number, string[]>();
  let total = 0;
  let take = probe.length;
  for (let i = 0; i < probe.length; i++) {
    const row = probe[i]!;
    let bytes = 0;
    const problems: string[] = [];
    cols.forEach((c, j) => {
      const n = Number(row[`__len${j}`] ?? 0) || 0;
      if (!c.position && n > max) problems.push(`${c.uses.join(', ')} (column ${c.name}): holds ${n} bytes, more than the ${max} a mapped value may have (the row was not read)`);
      else bytes += n;
    });
    if (problems.length > 0) oversized.set(i, problems);
    if (i > 0 && total + bytes > budget) {
      take = i;
      break;
    }
    total += bytes;
  }
  const same = (a: SourceRow, b: SourceRow) => asCursorText(a[cfg.key]) === asCursorText(b[cfg.key]) && asCursorText(a[col]) === asCursorText(b[col]);
  while (take < probe.length && same(probe[take]!, probe[take - 1]!)) take++;
  for (const i of [...oversized.keys()]) if (i >= take) oversized.delete(i);
  return { take, oversized };
}

/** A row that was not read because a value is too large: its position and the problem. */
function problemRow(cfg: AnyKindConfig, probed: SourceRow, problems: string[]): SourceRow {
  const row: SourceRow = { [cfg.key]: probed[cfg.key], [cursorColumn(cfg)]: probed[cursorColumn(cfg)] };
  Object.defineProperty(row, ROW_PROBLEMS, { value: problems, enumerable: false });
  return row;
}

/**
 * Keys that are whole numbers are bound as numbers so `9 < 10` holds (text would say
 * otherwise). Digits with a leading zero (`'002'`) are text keys and stay text: as numbers
 * they would compare as 2 against a text column and skip rows.
 */
export function keyBinding(key: string): string | number {
  if (/^-?(0|[1-9]\d{0,14})$/.test(key)) return Number(key);
  return key;
}

/**
 * A full page may end inside a group of rows that share one key (a join that multiplies a
 * record). The keyset would skip the rest of the group on the next page, so the group is
 * completed here: the planner then sees every copy together and can refuse the key.
 */
async function completeLastKey(rows: SourceRow[], key: string, fetchGroup: (k: string | number) => Promise<SourceRow[]>): Promise<SourceRow[]> {
  const last = rows[rows.length - 1];
  if (!last) return rows;
  const k = asCursorText(last[key]);
  if (k === null) return rows;
  let cut = rows.length;
  while (cut > 0 && asCursorText(rows[cut - 1]![key]) === k) cut--;
  const group = await fetchGroup(keyBinding(k));
  return group.length > rows.length - cut ? [...rows.slice(0, cut), ...group] : rows;
}

function asCursorText(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return v.toISOString();
  return String(v);
}

function compareKeys(a: string, b: string): number {
  const na = keyBinding(a);
  const nb = keyBinding(b);
  if (typeof na === 'number' && typeof nb === 'number') return na - nb;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Order of two positions, the way the keyset query orders rows. */
export function compareCursors(a: Cursor, b: Cursor): number {
  if ((a.value ?? '') !== (b.value ?? '')) {
    const na = Number(a.value);
    const nb = Number(b.value);
    if (a.value !== null && b.value !== null && Number.isFinite(na) && Number.isFinite(nb) && /^\d+$/.test(a.value) && /^\d+$/.test(b.value)) return na - nb;
    return (a.value ?? '') < (b.value ?? '') ? -1 : 1;
  }
  return compareKeys(a.key ?? '', b.key ?? '');
}

/**
 * One keyset page after `after`, ordered by (cursor column, key).
 *
 * Written the way each planner turns it into one index range that it reads in order and
 * stops at the limit: the row value `(col, key) > (v, k)` on PostgreSQL and SQLite, and
 * `col > v OR (col = v AND key > k)` on MySQL / MariaDB (whose range optimizer handles the
 * OR but not row values). PostgreSQL answers the OR form with a bitmap scan and a sort of
 * everything after the cursor, and `col >= v AND …` scans every row of a bulk update that
 * shares one timestamp on every page: both cost O(backlog) per page.
 * The tie-breaker matters: bulk updates give thousands of rows one updated_at, and a page
 * boundary inside them must neither repeat nor skip a row. Never OFFSET: its cost grows with
 * the backlog, keyset pages cost the same at any depth.
 * `inclusiveFrom` (with no key) reads `col >= value`: the lookback window's lower bound.
 */
export function pageQuery(db: Knex, cfg: AnyKindConfig, after: Cursor | null, opts: { pageSize: number; inclusiveFrom?: string | null }): Knex.QueryBuilder {
  return rangeQuery(db, cfg, after, opts, selectList(db, cfg));
}

/** `pageQuery`'s range with any select list, optionally closed at `upTo` (inclusive) and without `exclude`d keys. */
function rangeQuery(
  db: Knex,
  cfg: AnyKindConfig,
  after: Cursor | null,
  opts: { pageSize: number; inclusiveFrom?: string | null; upTo?: Cursor | null; exclude?: readonly string[] },
  columns: Array<string | Knex.Raw>,
): Knex.QueryBuilder {
  const col = cursorColumn(cfg);
  const key = cfg.key;
  const idMode = cfg.cursor.mode === 'id';
  // A NULL cursor has no place in the keyset order (and would restart it): such rows are
  // read by the rescan of effective dates only; check-config warns about nullable cursors.
  // NULL keys have no place in the keyset either (a position with a NULL key matches no row
  // and restarts the read): `readPage` reads them apart, by cursor range.
  let q = sourceRelation(db, cfg).select(columns).whereNotNull(col).whereNotNull(key);
  const mysql = dialectOf(db) === 'mysql';
  if (idMode) {
    if (after?.key != null) q = q.where(key, '>', keyBinding(after.key));
    if (opts.upTo?.key != null) q = q.where(key, '<=', keyBinding(opts.upTo.key));
    q = q.orderBy(key);
  } else {
    if (after?.value != null && after.key != null) {
      const v = after.value;
      const k = keyBinding(after.key);
      if (mysql) {
        // MySQL / MariaDB turn this OR into two ranges on the (col, key) index.
        q = q.where((w) => w.where(col, '>', v).orWhere((w2) => w2.where(col, '=', v).andWhere(key, '>', k)));
      } else {
        // PostgreSQL and SQLite use a row-value comparison as one range on the (col, key) index.
        q = q.whereRaw('(??, ??) > (?, ?)', [col, key, v, k]);
      }
    } else if (after?.value != null) {
      // A start bound (sync.start_from): a value without a key reads from it inclusively.
      q = q.where(col, '>=', after.value);
    } else if (opts.inclusiveFrom != null) {
      q = q.where(col, '>=', opts.inclusiveFrom);
    }
    if (opts.upTo?.value != null && opts.upTo.key != null) {
      const v = opts.upTo.value;
      const k = keyBinding(opts.upTo.key);
      if (mysql) q = q.where((w) => w.where(col, '<', v).orWhere((w2) => w2.where(col, '=', v).andWhere(key, '<=', k)));
      else q = q.whereRaw('(??, ??) <= (?, ?)', [col, key, v, k]);
    }
    q = q.orderBy([col, key]);
  }
  if (opts.exclude && opts.exclude.length > 0) q = q.whereNotIn(key, opts.exclude.map(keyBinding));
  return q.limit(opts.pageSize);
}

/**
 * Run one keyset page (see `pageQuery`) and note where it ended.
 *
 * Two steps keep a page's memory bounded whatever the rows hold: a probe reads the positions
 * and the byte length of each mapped value (the database computes them, the values stay
 * there), then the rows up to the cut (`cutProbe`) are read. The keyset is unchanged: a page
 * that meets its byte budget simply ends earlier, and the next one starts after its last row.
 */
export async function readPage(
  db: Knex,
  cfg: AnyKindConfig,
  after: Cursor | null,
  /** `keyless: false`: the caller knows there are no keyless rows to read (see `iterateChanged`). */
  opts: { pageSize: number; inclusiveFrom?: string | null; pageBytes?: number; keyless?: boolean },
): Promise<Page> {
  const col = cursorColumn(cfg);
  const key = cfg.key;
  const idMode = cfg.cursor.mode === 'id';
  const probe = (await rangeQuery(db, cfg, after, opts, probeList(db, cfg))) as SourceRow[];
  if (probe.length === 0) return { rows: await keylessRows(db, cfg, after, opts, null), last: null, more: false };
  const { take, oversized } = cutProbe(cfg, probe, opts.pageBytes ?? PAGE_BYTES);
  const position = (r: SourceRow): Cursor => ({ value: idMode ? null : asCursorText(r[col]), key: asCursorText(r[key]) });
  const upTo = position(probe[take - 1]!);
  const exclude = [...oversized.keys()].map((i) => asCursorText(probe[i]![key])).filter((k): k is string => k !== null);
  let rows = (await rangeQuery(db, cfg, after, { ...opts, upTo, exclude }, selectList(db, cfg))) as SourceRow[];
  let last = upTo;
  if (rows.length >= opts.pageSize) {
    // More rows than probed (late commits inside the range): the page ends at its row limit.
    last = position(rows[rows.length - 1]!);
  }
  const full = take === probe.length && probe.length >= opts.pageSize;
  const more = full || take < probe.length || rows.length >= opts.pageSize;
  // The copies of a key that a join multiplies, past the row limit (not of a row left unread).
  if ((full && !oversized.has(take - 1)) || rows.length >= opts.pageSize) {
    const lastValue = last.value;
    rows = await completeLastKey(rows, key, async (k) => {
      const q = sourceRelation(db, cfg).select(selectList(db, cfg)).where(key, k);
      return (await (idMode || lastValue === null ? q : q.where(col, lastValue))) as SourceRow[];
    });
  }
  for (const [i, problems] of oversized) rows.push(problemRow(cfg, probe[i]!, problems));
  rows.push(...(await keylessRows(db, cfg, after, opts, more ? last : null)));
  return { rows, last, more };
}

/**
 * Rows without a key in the cursor range a page covers: after `after` (or from
 * `inclusiveFrom`) up to `upTo` when more pages follow, else to the end. Consecutive pages
 * cover adjoining ranges, so each such row is read once per pass and planned as invalid (at
 * most a page of them per page: memory stays bounded, and they are one invalid record).
 */
async function keylessRows(
  db: Knex,
  cfg: AnyKindConfig,
  after: Cursor | null,
  opts: { pageSize: number; inclusiveFrom?: string | null; keyless?: boolean },
  upTo: Cursor | null,
): Promise<SourceRow[]> {
  if (cfg.cursor.mode === 'id' || opts.keyless === false) return [];
  const col = cursorColumn(cfg);
  let q = sourceRelation(db, cfg).select(selectList(db, cfg)).whereNull(cfg.key).whereNotNull(col);
  if (after?.value != null) q = q.where(col, '>', after.value);
  else if (opts.inclusiveFrom != null) q = q.where(col, '>=', opts.inclusiveFrom);
  if (upTo?.value != null) q = q.where(col, '<=', upTo.value);
  return (await q.orderBy(col).limit(opts.pageSize)) as SourceRow[];
}

/**
 * The lower bound of the lookback window: `lookbackSeconds` before the watermark, written
 * in the same notation as the stored value so the database compares like with like. A
 * transaction that commits late can carry an updated_at older than the watermark; the
 * re-read is harmless because unchanged rows hash to the version already planned.
 */
export function lookbackBound(watermarkValue: string, lookbackSeconds: number): string | null {
  if (lookbackSeconds <= 0) return null;
  const text = watermarkValue.trim();
  const hasOffset = /(Z|[+-]\d{2}(:?\d{2})?)$/i.test(text) && /\d{2}:\d{2}/.test(text);
  const dt = hasOffset
    ? DateTime.fromISO(text.replace(' ', 'T').replace(/([+-]\d{2})$/, '$1:00'), { setZone: true })
    : DateTime.fromSQL(text, { zone: 'UTC' });
  if (!dt.isValid) {
    // A numeric cursor column (epoch or version counter): subtract as a number.
    const n = Number(text);
    return Number.isFinite(n) ? String(n - lookbackSeconds * (n > 1e11 ? 1000 : 1)) : null;
  }
  const back = dt.minus({ seconds: lookbackSeconds });
  return hasOffset ? back.toISO({ suppressMilliseconds: false }) : back.toFormat('yyyy-MM-dd HH:mm:ss.SSS');
}

/** A cursor value as a number to compare: epoch figures as they are, timestamps in ms (zone-less ones as UTC, alike). */
function instantOf(text: string): number {
  const t = text.trim();
  if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
  let dt = DateTime.fromSQL(t, { zone: 'UTC', setZone: true });
  if (!dt.isValid) dt = DateTime.fromISO(t.replace(' ', 'T'), { zone: 'UTC', setZone: true });
  return dt.isValid ? dt.toMillis() : Number.NaN;
}

/**
 * Pages of rows changed since `watermark`, with the lookback window re-read first.
 * Memory stays flat: one page at a time, whatever the backlog.
 */
export async function* iterateChanged(
  db: Knex,
  cfg: AnyKindConfig,
  watermark: Cursor | null,
  /**
   * `floor`: where sync.start_from began the kind; the lookback never reads rows before it.
   * `lookbackSeconds`: 0 turns the lookback off, for id cursors too (their window is
   * `cursor.lookback_ids` keys).
   * `horizon`: rows whose cursor time is later than `atMs` (a typo such as 2099, an app
   * server's fast clock) are held back and the read stops there. Passed, they would carry
   * the watermark beyond every later change; held, they come in once their time is reached
   * (and the rescan reads them by effective date meanwhile).
   */
  opts: { pageSize: number; lookbackSeconds: number; floor?: string | null; horizon?: { atMs: number; zone: string } | undefined },
): AsyncGenerator<Page> {
  let after: Cursor | null = watermark;
  let inclusiveFrom: string | null = null;
  // Only a row position looks back; a start bound (no key) is read from exactly.
  if (cfg.cursor.mode === 'updated_at' && watermark?.value && watermark.key !== null) {
    let bound = lookbackBound(watermark.value, opts.lookbackSeconds);
    if (bound !== null && opts.floor && instantOf(bound) < instantOf(opts.floor)) bound = opts.floor;
    if (bound !== null) {
      after = null;
      inclusiveFrom = bound;
    }
  }
  // An id cursor looks back by keys: ids commit out of order (see `idLookbackStart`).
  if (cfg.cursor.mode === 'id' && watermark && opts.lookbackSeconds > 0) after = (await idLookbackStart(db, cfg, watermark, { ids: lookbackIds(cfg), floorKey: idFloorKey(opts.floor) })) ?? after;
  const col = cursorColumn(cfg);
  const horizon = cfg.cursor.mode === 'updated_at' ? opts.horizon : undefined;
  // One probe per pass instead of a query per page: keyless rows are rare (a query source
  // would otherwise run twice for every page).
  let probe = sourceRelation(db, cfg).select(cfg.key).whereNull(cfg.key).whereNotNull(col);
  if (after?.value != null) probe = probe.where(col, '>', after.value);
  else if (inclusiveFrom != null) probe = probe.where(col, '>=', inclusiveFrom);
  const keyless = cfg.cursor.mode === 'updated_at' && (await probe.first()) !== undefined;
  for (;;) {
    let page = await readPage(db, cfg, after, { pageSize: opts.pageSize, inclusiveFrom, keyless });
    const beyond = (v: unknown) => horizon !== undefined && (cursorTimeMs(v, horizon.zone) ?? -Infinity) > horizon.atMs;
    // Keyed rows come in cursor order: only a page whose last one is beyond holds any back.
    // (Keyless rows never move the watermark; they are planned as invalid either way.)
    if (page.last?.value != null && beyond(page.last.value)) {
      const isHeld = (r: SourceRow) => r[cfg.key] !== null && r[cfg.key] !== undefined && beyond(r[col]);
      const rows = page.rows.filter((r) => !isHeld(r));
      const lastRow = [...rows].reverse().find((r) => r[cfg.key] !== null && r[cfg.key] !== undefined);
      const last = lastRow ? { value: asCursorText(lastRow[col]), key: asCursorText(lastRow[cfg.key]) } : null;
      page = { rows, last, more: false, held: page.rows.filter(isHeld) };
      yield page;
      return;
    }
    if (page.rows.length > 0) yield page;
    if (!page.more || !page.last) return;
    after = page.last;
    inclusiveFrom = null;
  }
}

/**
 * The day after `to` (yyyy-MM-dd), or null for no upper bound: none given, or one whose next
 * day cannot be written as a four-digit year. `9999-12-31` + 1 day is `10000-01-01`, which
 * MySQL and SQLite compare as text and put before every real date: the window came back empty.
 */
export function exclusiveUpperBound(to: string | null | undefined): string | null {
  if (!to) return null;
  const next = DateTime.fromISO(to, { zone: 'UTC' }).plus({ days: 1 });
  return next.isValid && next.year <= 9999 ? next.toFormat('yyyy-MM-dd') : null;
}

/**
 * Pages of rows whose effective date lies in [from, to] (yyyy-MM-dd; no `to`: from onwards),
 * keyset on the key, regardless of the watermark: backfill and rescan. Bounded by bytes like
 * `readPage`. Keyless rows come apart, with the first page.
 */
export async function* readByEffectiveDate(
  db: Knex,
  cfg: AnyKindConfig,
  opts: { from: string; to?: string | null; pageSize: number; pageBytes?: number },
): AsyncGenerator<SourceRow[]> {
  const col = effectiveDateColumn(cfg);
  const upper = exclusiveUpperBound(opts.to);
  const byKey: AnyKindConfig = { ...cfg, cursor: { mode: 'id' } } as AnyKindConfig;
  let afterKey: string | null = null;
  for (;;) {
    const inWindow = (columns: Array<string | Knex.Raw>) => {
      const q = sourceRelation(db, cfg).select(columns).where(col, '>=', `${opts.from} 00:00:00`);
      return upper === null ? q : q.andWhere(col, '<', `${upper} 00:00:00`);
    };
    const keyless = async () => (afterKey === null ? ((await inWindow(selectList(db, byKey)).whereNull(cfg.key).orderBy(col).limit(opts.pageSize)) as SourceRow[]) : []);
    const range = (columns: Array<string | Knex.Raw>, upTo: string | null, exclude: readonly string[] = []) => {
      let q = inWindow(columns).whereNotNull(cfg.key);
      if (afterKey !== null) q = q.andWhere(cfg.key, '>', keyBinding(afterKey));
      if (upTo !== null) q = q.andWhere(cfg.key, '<=', keyBinding(upTo));
      if (exclude.length > 0) q = q.whereNotIn(cfg.key, exclude.map(keyBinding));
      return q.orderBy(cfg.key).limit(opts.pageSize);
    };
    const probe = (await range(probeList(db, byKey), null)) as SourceRow[];
    if (probe.length === 0) {
      const rows = await keyless();
      if (rows.length > 0) yield rows;
      return;
    }
    const { take, oversized } = cutProbe(byKey, probe, opts.pageBytes ?? PAGE_BYTES);
    const upTo = asCursorText(probe[take - 1]![cfg.key]);
    const exclude = [...oversized.keys()].map((i) => asCursorText(probe[i]![cfg.key])).filter((k): k is string => k !== null);
    let rows = (await range(selectList(db, byKey), upTo, exclude)) as SourceRow[];
    let last = upTo;
    if (rows.length >= opts.pageSize) last = asCursorText(rows[rows.length - 1]![cfg.key]);
    const full = take === probe.length && probe.length >= opts.pageSize;
    const more = full || take < probe.length || rows.length >= opts.pageSize;
    if ((full && !oversized.has(take - 1)) || rows.length >= opts.pageSize) {
      rows = await completeLastKey(rows, cfg.key, async (k) => (await inWindow(selectList(db, byKey)).andWhere(cfg.key, k)) as SourceRow[]);
    }
    for (const [i, problems] of oversized) rows.push(problemRow(byKey, probe[i]!, problems));
    rows.push(...(await keyless()));
    if (rows.length > 0) yield rows;
    if (!more || last === null) return;
    afterKey = last;
  }
}

/** Which of these keys still exist in the source (a missing one was deleted outright). */
export async function existingKeys(db: Knex, cfg: AnyKindConfig, keys: readonly string[]): Promise<Set<string>> {
  const out = new Set<string>();
  for (let i = 0; i < keys.length; i += 500) {
    const part = keys.slice(i, i + 500).map(keyBinding);
    const rows = (await sourceRelation(db, cfg).select(cfg.key).whereIn(cfg.key, part)) as SourceRow[];
    for (const r of rows) {
      const k = asCursorText(r[cfg.key]);
      if (k !== null) out.add(k);
    }
  }
  return out;
}
