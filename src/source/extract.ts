import type { Knex } from 'knex';
import type { AnyKindConfig } from '../config/schema.js';
import { sourceDialect } from '../db/dialect.js';
import type { SourceRow } from '../mapping/map.js';
import type { Cursor } from '../state/watermarks.js';
import { cutProbe, PAGE_BYTES, probeList, problemRow, selectList } from './columns.js';
import { asCursorText, completeLastKey, cursorTimeMs, instantOf, keyBinding, lookbackBound } from './keyset.js';
import { cursorColumn, sourceRelation } from './relation.js';
import { idFloorKey, idLookbackStart, lookbackIds } from './idLookback.js';

/*
 * The change read: keyset pages after the watermark, with the lookback window re-read first.
 */

export interface Page {
  readonly rows: SourceRow[];
  /** Position of the page's last row (null for an empty page). */
  readonly last: Cursor | null;
  /** Rows may follow: the page ended at its row limit or at its byte budget. */
  readonly more: boolean;
  /** Rows held back: their cursor time lies beyond the horizon (see `iterateChanged`). */
  readonly held?: SourceRow[];
}

/** The source database's own clock, epoch ms: the reference for cursor times it stores. */
export async function sourceNow(db: Knex): Promise<number> {
  const d = sourceDialect(db);
  const rows = d.rawRows<{ ms: unknown }>(await db.raw(d.nowMsSql));
  const ms = Number(rows[0]?.ms);
  if (!Number.isFinite(ms)) throw new Error('could not read the source database clock');
  return Math.round(ms);
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
  const rowValues = sourceDialect(db).rowValueKeyset;
  if (idMode) {
    if (after?.key != null) q = q.where(key, '>', keyBinding(after.key));
    if (opts.upTo?.key != null) q = q.where(key, '<=', keyBinding(opts.upTo.key));
    q = q.orderBy(key);
  } else {
    if (after?.value != null && after.key != null) {
      const v = after.value;
      const k = keyBinding(after.key);
      // A row-value comparison as one range on the (col, key) index, or the OR that the
      // dialect turns into two ranges on it (see SourceDialect.rowValueKeyset).
      if (rowValues) q = q.whereRaw('(??, ??) > (?, ?)', [col, key, v, k]);
      else q = q.where((w) => w.where(col, '>', v).orWhere((w2) => w2.where(col, '=', v).andWhere(key, '>', k)));
    } else if (after?.value != null) {
      // A start bound (sync.start_from): a value without a key reads from it inclusively.
      q = q.where(col, '>=', after.value);
    } else if (opts.inclusiveFrom != null) {
      q = q.where(col, '>=', opts.inclusiveFrom);
    }
    if (opts.upTo?.value != null && opts.upTo.key != null) {
      const v = opts.upTo.value;
      const k = keyBinding(opts.upTo.key);
      if (rowValues) q = q.whereRaw('(??, ??) <= (?, ?)', [col, key, v, k]);
      else q = q.where((w) => w.where(col, '<', v).orWhere((w2) => w2.where(col, '=', v).andWhere(key, '<=', k)));
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
 * Pages of rows changed since `watermark`, with the lookback window re-read first.
 * Memory stays flat: one page at a time, whatever the backlog.
 */
export async function* iterateChanged(
  db: Knex,
  cfg: AnyKindConfig,
  watermark: Cursor | null,
  /**
   * `floor`: where sync.start_from began the kind; the lookback never reads rows before it.
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
