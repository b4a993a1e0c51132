import type { Knex } from 'knex';
import { DateTime } from 'luxon';
import type { AnyKindConfig } from '../config/schema.js';
import type { SourceRow } from '../mapping/map.js';
import { cutProbe, PAGE_BYTES, probeList, problemRow, selectList } from './columns.js';
import { asCursorText, completeLastKey, keyBinding } from './keyset.js';
import { effectiveDateColumn, sourceRelation } from './relation.js';

/*
 * Reads by effective date, regardless of the watermark: the rescan window and backfill.
 */

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

/** The rows of a kind whose effective date lies in [from, to] (no `to`: from onwards). */
function windowQuery(db: Knex, cfg: AnyKindConfig, w: { from: string; to?: string | null }): Knex.QueryBuilder {
  const col = effectiveDateColumn(cfg);
  const upper = exclusiveUpperBound(w.to);
  const q = sourceRelation(db, cfg).where(col, '>=', `${w.from} 00:00:00`);
  return upper === null ? q : q.andWhere(col, '<', `${upper} 00:00:00`);
}

/** How many rows `readByEffectiveDate` reads for the window (keyless ones included). */
export async function countByEffectiveDate(db: Knex, cfg: AnyKindConfig, w: { from: string; to?: string | null }): Promise<number> {
  const row = (await windowQuery(db, cfg, w).count({ n: '*' }).first()) as { n: number | string } | undefined;
  return Number(row?.n ?? 0);
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
  const byKey: AnyKindConfig = { ...cfg, cursor: { mode: 'id' } } as AnyKindConfig;
  let afterKey: string | null = null;
  for (;;) {
    const inWindow = (columns: Array<string | Knex.Raw>) => windowQuery(db, cfg, opts).select(columns);
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
