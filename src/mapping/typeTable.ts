import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { AnyKindConfig, LeaveKindConfig, TypeMapping } from '../config/schema.js';
import { dialectFor } from '../db/dialect.js';
import { AppError, describeError } from '../errors.js';
import type { Kind } from '../kinds.js';
import { operatorSql } from '../source/relation.js';
import type { StateTables } from '../state/tables.js';

/*
 * The type table of a leave or out kind: `types:` from the YAML, `types_query:` from the
 * database, or both (a YAML entry overrides the query's row for its code).
 *
 * A query row needs `code` and at least one name: `name_ch`, `name_en`, `name_ja`, or `names`,
 * a JSON object keyed by locale (Odoo's `hr_leave_type.name` jsonb: {"en_US": …, "zh_CN": …};
 * zh* keys give ch, en* en, ja* ja). Optional: `uniq_id`, `default_locale` (ch, en, ja; default
 * the first of ch, en, ja that has a name).
 *
 * A code without a uniq_id gets a derived one (`derivedUniqId`), stored in the state DB the
 * first time it is used and read back ever after: the uniq_id of a code never changes, even
 * if the rule that derived it did.
 */

export const UNIQ_ID = /^[A-Za-z0-9_-]{1,13}$/;

/**
 * The uniq_id derived from a type code: the code itself when it is 1–13 ASCII letters, digits,
 * `_` or `-` (readable in Feishu's console), otherwise `t` and the first 12 hex digits of the
 * SHA-256 of the code (13 characters).
 */
export function derivedUniqId(code: string): string {
  if (UNIQ_ID.test(code)) return code;
  return hashedUniqId(code);
}

function hashedUniqId(code: string): string {
  return `t${crypto.createHash('sha256').update(code, 'utf8').digest('hex').slice(0, 12)}`;
}

export type TypeSource = 'types' | 'types_query' | 'types_query (uniq_id derived)';

export interface TypeTable {
  readonly types: Record<string, TypeMapping>;
  /** Where each code's entry came from. */
  readonly sources: Record<string, TypeSource>;
  /** Rows of the query that could not be used, each naming its code. */
  readonly problems: string[];
}

type Locale = 'ch' | 'en' | 'ja';
const LOCALES: readonly Locale[] = ['ch', 'en', 'ja'];

function localeOf(key: string): Locale | null {
  const k = key.toLowerCase();
  if (k === 'ch' || k.startsWith('zh')) return 'ch';
  if (k.startsWith('en')) return 'en';
  if (k.startsWith('ja')) return 'ja';
  return null;
}

/** Preferred key of a locale first (zh_CN before zh_TW, en_US before en_GB). */
const PREFERRED: Record<string, number> = { ch: 0, zh_cn: 1, zh: 2, zh_hans: 3, en: 0, en_us: 1, ja: 0, ja_jp: 1 };

function text(v: unknown): string | undefined {
  if (v === null || v === undefined) return undefined;
  const s = String(v).trim();
  return s === '' ? undefined : s;
}

function namesOf(row: Record<string, unknown>): Partial<Record<Locale, string>> {
  const get = (name: string) => row[name] ?? row[Object.keys(row).find((k) => k.toLowerCase() === name) ?? ''];
  const out: Partial<Record<Locale, string>> = {};
  let json = get('names');
  if (typeof json === 'string') {
    try {
      json = JSON.parse(json);
    } catch {
      json = undefined;
    }
  }
  if (json && typeof json === 'object') {
    const entries = Object.entries(json as Record<string, unknown>).sort(([a], [b]) => (PREFERRED[a.toLowerCase()] ?? 9) - (PREFERRED[b.toLowerCase()] ?? 9));
    for (const [key, value] of entries) {
      const locale = localeOf(key);
      const v = text(value);
      if (locale && v && out[locale] === undefined) out[locale] = v;
    }
  }
  for (const l of LOCALES) {
    const v = text(get(`name_${l}`));
    if (v) out[l] = v;
  }
  return out;
}

export interface TypeTableDeps {
  readonly source: Knex;
  readonly state: Knex;
  readonly t: StateTables;
  /** False (preview, check-config): derived uniq_ids are shown, not stored. */
  readonly persist?: boolean;
}

/** Run a kind's types_query; an error names the key. */
async function queryRows(source: Knex, kind: Kind, sql: string): Promise<Array<Record<string, unknown>>> {
  try {
    const inner = operatorSql(sql.trim().replace(/;\s*$/, ''), dialectFor(source).name);
    return (await source.from(source.raw(`(${inner}\n) as types_src`)).select('*')) as Array<Record<string, unknown>>;
  } catch (err) {
    throw new AppError('TYPES_QUERY_FAILED', `kinds.${kind}.types_query failed: ${describeError(err)}`);
  }
}

/** The resolved type table of a leave or out kind (its `types` alone when it has no query). */
export async function loadTypeTable(d: TypeTableDeps, kind: Kind, cfg: AnyKindConfig): Promise<TypeTable> {
  const c = cfg as LeaveKindConfig;
  const yaml = c.types ?? {};
  const types: Record<string, TypeMapping> = {};
  const sources: Record<string, TypeSource> = {};
  const problems: string[] = [];
  if (c.types_query) {
    const rows = await queryRows(d.source, kind, c.types_query);
    const stored = await storedIds(d, kind);
    const taken = new Map<string, string>([...stored].map(([code, id]) => [id, code]));
    for (const [code, t] of Object.entries(yaml)) taken.set(t.uniq_id, code);
    const fresh: Array<{ kind: string; code: string; uniq_id: string; created_at: number }> = [];
    for (const row of rows) {
      const code = text(row.code ?? row[Object.keys(row).find((k) => k.toLowerCase() === 'code') ?? '']);
      if (code === undefined) {
        problems.push(`kinds.${kind}.types_query: a row without a code (column code) is skipped`);
        continue;
      }
      if (Object.hasOwn(yaml, code) || Object.hasOwn(types, code)) continue;
      const names = namesOf(row);
      const given = text(row.default_locale);
      const defaultLocale = (given && LOCALES.includes(given as Locale) ? given : LOCALES.find((l) => names[l])) as Locale | undefined;
      if (!defaultLocale || !names[defaultLocale]) {
        problems.push(`kinds.${kind}.types_query: code ${JSON.stringify(code)} has no ${given ? `${given} ` : ''}name (name_ch, name_en, name_ja or names): skipped, its records are invalid`);
        continue;
      }
      let uniqId = text(row.uniq_id);
      let source: TypeSource = 'types_query';
      if (uniqId !== undefined && !UNIQ_ID.test(uniqId)) {
        problems.push(`kinds.${kind}.types_query: code ${JSON.stringify(code)} has uniq_id ${JSON.stringify(uniqId)}, not 1–13 ASCII letters, digits, _ or -: skipped`);
        continue;
      }
      if (uniqId === undefined) {
        source = 'types_query (uniq_id derived)';
        uniqId = stored.get(code);
        if (uniqId === undefined) {
          uniqId = derivedUniqId(code);
          // Another code holds it already (a code equal to another's hash, or a YAML entry): the hash.
          if (taken.has(uniqId) && taken.get(uniqId) !== code) uniqId = hashedUniqId(code);
          if (taken.has(uniqId) && taken.get(uniqId) !== code) {
            problems.push(`kinds.${kind}.types_query: code ${JSON.stringify(code)}: its derived uniq_id ${uniqId} is taken by code ${JSON.stringify(taken.get(uniqId))}: give it a uniq_id`);
            continue;
          }
          taken.set(uniqId, code);
          fresh.push({ kind, code, uniq_id: uniqId, created_at: Date.now() });
        }
      }
      types[code] = { uniq_id: uniqId, names, default_locale: defaultLocale };
      sources[code] = source;
    }
    if (fresh.length > 0 && d.persist !== false) {
      // Concurrent first uses of a code agree (the derivation is deterministic); a row already there wins.
      await d.state(d.t.typeIds).insert(fresh).onConflict(['kind', 'code']).ignore();
      const again = await storedIds(d, kind);
      for (const f of fresh) {
        const id = again.get(f.code);
        if (id && types[f.code]) types[f.code] = { ...types[f.code]!, uniq_id: id };
      }
    }
  }
  for (const [code, t] of Object.entries(yaml)) {
    types[code] = t;
    sources[code] = 'types';
  }
  return { types, sources, problems };
}

async function storedIds(d: TypeTableDeps, kind: Kind): Promise<Map<string, string>> {
  if (!(await d.state.schema.hasTable(d.t.typeIds))) return new Map();
  const rows = (await d.state(d.t.typeIds).where({ kind }).select('code', 'uniq_id')) as Array<{ code: string; uniq_id: string }>;
  return new Map(rows.map((r) => [r.code, r.uniq_id]));
}

/** The kind's configuration with `types` replaced by the resolved table (unchanged without a types_query). */
export async function withTypeTable(d: TypeTableDeps, kind: Kind, cfg: AnyKindConfig): Promise<{ cfg: AnyKindConfig; table: TypeTable | null }> {
  if ((kind !== 'leave' && kind !== 'out') || !(cfg as LeaveKindConfig).types_query) return { cfg, table: null };
  const table = await loadTypeTable(d, kind, cfg);
  return { cfg: { ...(cfg as LeaveKindConfig), types: table.types } as AnyKindConfig, table };
}

/** The type table as lines for check-config and preview: `code → uniq_id  names  (source)`. */
export function describeTypeTable(table: TypeTable): string[] {
  return Object.entries(table.types)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([code, t]) => {
      const names = LOCALES.filter((l) => t.names[l]).map((l) => `${l}: ${t.names[l]}`).join(', ');
      return `${code} → ${t.uniq_id} (${names}; default ${t.default_locale}; from ${table.sources[code] ?? 'types'})`;
    });
}
