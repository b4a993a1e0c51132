import type { Knex } from 'knex';
import type { AnyKindConfig } from '../config/schema.js';
import { sourceDialect } from '../db/dialect.js';
import { MAPPING_LIMITS } from '../mapping/limits.js';
import { ROW_PROBLEMS, type SourceRow } from '../mapping/map.js';
import { asCursorText } from './keyset.js';
import { cursorColumn, fieldColumn } from './relation.js';

/*
 * What a page reads of each row: the mapped columns only, free text cut to what the mapper
 * can use, and a probe of byte lengths first so that a page stays within its memory budget.
 */

/**
 * Bytes of mapped values one page may hold. A page ends at `sync.page_size` rows or here,
 * whichever comes first, so wide rows make short pages instead of a heap overflow: the
 * deployed heap is 192 MB, and the rows of a page live through mapping and planning.
 */
export const PAGE_BYTES = 8 * 2 ** 20;

/** Free-text fields: the mapper cuts them to `maxTextChars`; only what it can use is read. */
const TEXT_FIELDS: ReadonlySet<string> = new Set(['reason', 'remarks']);

export interface Column {
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
export function columnSql(db: Knex, c: Column): { sql: string; bindings: string[] } {
  if (!c.cut) return { sql: '??', bindings: [c.name] };
  // Characters, not bytes, on every dialect (SQLite: see its textPrefix).
  return sourceDialect(db).textPrefix(c.name, MAPPING_LIMITS.textReadChars);
}

export function selectList(db: Knex, cfg: AnyKindConfig): Array<string | Knex.Raw> {
  return mappedColumns(cfg).map((c) => {
    if (!c.cut) return c.name;
    const e = columnSql(db, c);
    return db.raw(`${e.sql} AS ??`, [...e.bindings, c.name]);
  });
}

/** Byte length of a value as read, on any column type (NULL for NULL). */
function lengthSql(db: Knex, e: { sql: string; bindings: string[] }, alias: string): Knex.Raw {
  return db.raw(`${sourceDialect(db).byteLength(e.sql)} AS ??`, [...e.bindings, alias]);
}

/** What a page probe reads per row: its position and the byte length of each mapped value. */
export function probeList(db: Knex, cfg: AnyKindConfig): Array<string | Knex.Raw> {
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
export function cutProbe(cfg: AnyKindConfig, probe: SourceRow[], budget: number): { take: number; oversized: Map<number, string[]> } {
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
export function problemRow(cfg: AnyKindConfig, probed: SourceRow, problems: string[]): SourceRow {
  const row: SourceRow = { [cfg.key]: probed[cfg.key], [cursorColumn(cfg)]: probed[cursorColumn(cfg)] };
  Object.defineProperty(row, ROW_PROBLEMS, { value: problems, enumerable: false });
  return row;
}
