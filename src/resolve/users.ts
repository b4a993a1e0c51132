import type { Knex } from 'knex';
import type { ResolvedConfig } from '../config/load.js';
import type { AnyKindConfig, UserIdSpec } from '../config/schema.js';
import type { Kind } from '../kinds.js';
import type { Logger } from '../log/logger.js';
import { inactiveReason, ROW_PROBLEMS, type SourceRow } from '../mapping/map.js';
import { chunks } from '../state/records.js';
import type { StateTables } from '../state/tables.js';
import { ContactClient, MAX_ADDRESSES_PER_CALL, type ContactIdType } from './contact.js';

/*
 * fields.user_id with `resolve: email | mobile`: the column holds an address, and the
 * worker asks Feishu's contact API for the user id (feishu-api.md §11.5), caching each answer,
 * found or not, in the state DB for feishu.resolve_ttl_hours. The rows handed to the mapper
 * then hold the user id in that column; a row whose address Feishu does not know carries the
 * reason instead and maps to `invalid` (judged again once the TTL has passed).
 */

export type AddressKind = 'email' | 'mobile';

export interface ResolveSpec {
  readonly column: string;
  readonly kind: AddressKind;
}

/** The resolving column of a kind, or null when its user_id is a plain id. */
export function resolveSpec(cfg: AnyKindConfig): ResolveSpec | null {
  const spec = cfg.fields.user_id as UserIdSpec;
  if (typeof spec === 'string' || spec.resolve === undefined || spec.column === undefined) return null;
  return { column: spec.column, kind: spec.resolve };
}

/** The id type to ask for: attendance's employee_id is contact's user_id (feishu-api.md §11.5). */
export function contactIdType(config: ResolvedConfig): ContactIdType {
  return config.feishu.employee_type === 'open_id' ? 'open_id' : 'user_id';
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const MOBILE = /^\+?\d{5,20}$/;

/**
 * The address as it is asked for and cached: an e-mail trimmed and lower-cased; a mobile
 * without spaces, dashes, dots and parentheses (a leading + kept: non-mainland numbers need
 * it). Null when the value is not an address of that kind.
 */
export function normalizeAddress(kind: AddressKind, raw: unknown): string | null {
  if (typeof raw !== 'string' && typeof raw !== 'number' && typeof raw !== 'bigint') return null;
  const text = String(raw).trim();
  if (kind === 'email') {
    const e = text.toLowerCase();
    return EMAIL.test(e) && e.length <= 191 ? e : null;
  }
  const m = text.replace(/[\s\-().]/g, '');
  return MOBILE.test(m) ? m : null;
}

export interface Resolution {
  readonly userId: string | null;
  readonly resigned: boolean;
  readonly resolvedAt: number;
}

export interface ResolverDeps {
  readonly config: ResolvedConfig;
  readonly state: Knex;
  readonly t: StateTables;
  readonly contact: ContactClient;
  readonly logger?: Logger | undefined;
  /** False (preview): read the cache if it exists, never write it. */
  readonly persist?: boolean;
  readonly now?: () => number;
  readonly signal?: AbortSignal | undefined;
}

function ttlMs(config: ResolvedConfig): number {
  return config.feishu.resolve_ttl_hours * 3_600_000;
}

async function cacheExists(d: ResolverDeps): Promise<boolean> {
  return d.state.schema.hasTable(d.t.userResolution);
}

/** The cached answers for these addresses (fresh or not). */
export async function cachedResolutions(d: Pick<ResolverDeps, 'state' | 't'>, kind: AddressKind, idType: ContactIdType, addresses: readonly string[]): Promise<Map<string, Resolution>> {
  const out = new Map<string, Resolution>();
  for (const part of chunks([...addresses], 500)) {
    const rows = (await d.state(d.t.userResolution).where({ address_kind: kind, id_type: idType }).whereIn('address', part).select('address', 'user_id', 'resigned', 'resolved_at')) as Array<{
      address: string;
      user_id: string | null;
      resigned: unknown;
      resolved_at: number | string;
    }>;
    for (const r of rows) out.set(r.address, { userId: r.user_id ?? null, resigned: r.resigned === true || r.resigned === 1 || r.resigned === '1', resolvedAt: Number(r.resolved_at) });
  }
  return out;
}

/**
 * Resolve addresses: cached answers younger than the TTL as they are, the others asked of
 * Feishu (≤ 50 a call) and cached again.
 */
export async function resolveAddresses(d: ResolverDeps, kind: AddressKind, addresses: readonly string[]): Promise<Map<string, Resolution>> {
  const now = (d.now ?? Date.now)();
  const idType = contactIdType(d.config);
  const unique = [...new Set(addresses)];
  const known = (await cacheExists(d)) ? await cachedResolutions(d, kind, idType, unique) : new Map<string, Resolution>();
  const out = new Map<string, Resolution>();
  const ask: string[] = [];
  for (const a of unique) {
    const c = known.get(a);
    if (c && c.resolvedAt > now - ttlMs(d.config)) out.set(a, c);
    else ask.push(a);
  }
  for (const part of chunks(ask, MAX_ADDRESSES_PER_CALL)) {
    const users = await d.contact.batchGetId(idType, kind === 'email' ? { emails: part } : { mobiles: part }, d.signal);
    const rows = users.map((u) => {
      const address = (kind === 'email' ? u.email : u.mobile)!;
      const r: Resolution = { userId: u.userId ?? null, resigned: u.resigned, resolvedAt: now };
      out.set(address, r);
      return { address_kind: kind, address, id_type: idType, user_id: r.userId, resigned: r.resigned, resolved_at: now };
    });
    if (d.persist !== false && rows.length > 0) {
      await d.state(d.t.userResolution).insert(rows).onConflict(['address_kind', 'address', 'id_type']).merge(['user_id', 'resigned', 'resolved_at']);
    }
  }
  const resigned = [...out.values()].filter((r) => r.resigned && r.userId && r.resolvedAt === now).length;
  if (ask.length > 0) d.logger?.debug('resolved addresses through the contact API', { kind, asked: ask.length, resigned });
  return out;
}

function columnKey(row: SourceRow, column: string): string | undefined {
  if (Object.prototype.hasOwnProperty.call(row, column)) return column;
  return Object.keys(row).find((k) => k.toLowerCase() === column.toLowerCase());
}

const LABEL: Record<AddressKind, string> = { email: 'e-mail', mobile: 'mobile' };

/**
 * Rows for the mapper: the address in the user_id column replaced by the Feishu user id.
 * A row whose address is malformed or unknown to Feishu carries the reason (the mapper makes
 * it `invalid`); cancelled, deleted and empty-address rows pass unchanged (the mapper judges
 * them as it would any other).
 */
export async function resolveRows(d: ResolverDeps, kind: Kind, cfg: AnyKindConfig, rows: readonly SourceRow[]): Promise<SourceRow[]> {
  const spec = resolveSpec(cfg);
  if (!spec || rows.length === 0) return [...rows];
  const wanted: Array<{ row: SourceRow; key: string; address: string | null; raw: unknown } | null> = rows.map((row) => {
    if ((row as { [ROW_PROBLEMS]?: unknown })[ROW_PROBLEMS] || inactiveReason(cfg, row)) return null;
    const key = columnKey(row, spec.column);
    const raw = key === undefined ? undefined : row[key];
    if (raw === null || raw === undefined || String(raw).trim() === '') return null;
    return { row, key: key!, address: normalizeAddress(spec.kind, raw), raw };
  });
  const addresses = wanted.flatMap((w) => (w?.address ? [w.address] : []));
  const answers = addresses.length > 0 ? await resolveAddresses(d, spec.kind, addresses) : new Map<string, Resolution>();
  const label = `fields.user_id (column ${spec.column})`;
  return rows.map((row, i) => {
    const w = wanted[i];
    if (!w) return row;
    if (!w.address) return { ...row, [ROW_PROBLEMS]: [`${label}: ${JSON.stringify(String(w.raw).slice(0, 80))} is not ${spec.kind === 'email' ? 'an e-mail address' : 'a mobile number'}`] };
    const a = answers.get(w.address);
    if (!a?.userId) {
      return { ...row, [ROW_PROBLEMS]: [`${label}: ${LABEL[spec.kind]} ${w.address} not found in Feishu (asked again after feishu.resolve_ttl_hours: ${d.config.feishu.resolve_ttl_hours} h)`] };
    }
    return { ...row, [w.key]: a.userId };
  });
}

/** Cached figures for `status`: addresses resolved, not found, and resigned users. */
export async function resolutionFigures(state: Knex, t: StateTables): Promise<{ resolved: number; notFound: number; resigned: number; resignedUsers: string[] } | null> {
  if (!(await state.schema.hasTable(t.userResolution))) return null;
  const rows = (await state(t.userResolution).select('address', 'user_id', 'resigned')) as Array<{ address: string; user_id: string | null; resigned: unknown }>;
  const resignedRows = rows.filter((r) => r.user_id && (r.resigned === true || r.resigned === 1 || r.resigned === '1'));
  return {
    resolved: rows.filter((r) => r.user_id).length,
    notFound: rows.filter((r) => !r.user_id).length,
    resigned: resignedRows.length,
    resignedUsers: [...new Set(resignedRows.map((r) => r.user_id!))].sort().slice(0, 20),
  };
}
