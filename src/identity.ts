/**
 * The identity of what is sent: the version of a mapped record (a hash of its request) and
 * the `idempotent_id` Feishu deduplicates a create by. Mapping, planning and sending all ask
 * this module; nothing else computes either.
 */
import crypto from 'node:crypto';
import { KIND_ARRAY, type Kind } from './kinds.js';

/** JSON with object keys sorted at every level, so equal content always serialises the same. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/**
 * The version of a mapped record: sha256 over the canonical request (everything that is
 * sent, nothing else), hex, 40 characters (160 bits). Any change in what Feishu would hold
 * changes it; re-reading an unchanged row yields the same version.
 */
export function versionHash(request: unknown): string {
  return crypto.createHash('sha256').update(canonicalJson(request)).digest('hex').slice(0, 40);
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

function base32(buf: Buffer): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of buf) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

const KIND_LETTER: Readonly<Record<Kind, string>> = Object.freeze({ leave: 'l', overtime: 'o', trip: 't', out: 'g' });

/**
 * The `idempotent_id` of a create: a deterministic function of (namespace, kind, source key,
 * version, generation), ASCII, at most 12 + 3 + 26 characters. 26 base32 characters carry
 * 130 bits of sha256, so two different inputs collide with odds far below one in 10^30 for
 * any realistic number of records. The generation separates re-creations of the same
 * content after a revoke (an edit undone), which Feishu might otherwise refuse as a
 * duplicate. Losing the state and replaying yields the same keys: Feishu stores nothing twice.
 */
export function idempotencyKey(o: { namespace: string; kind: Kind; sourceKey: string; version: string; generation?: number }): string {
  const digest = crypto
    .createHash('sha256')
    .update([o.namespace, o.kind, o.sourceKey, o.version, String(o.generation ?? 0)].join('\u0000'))
    .digest();
  return `${o.namespace}-${KIND_LETTER[o.kind]}-${base32(digest).slice(0, 26)}`;
}

/** A `user_approval` request whose item(s) of `kind` carry `idempotentId`; the rest unchanged. */
export function withIdempotentId<T extends object>(request: T, kind: Kind, idempotentId: string): T {
  const arr = KIND_ARRAY[kind];
  const items = ((request as Record<string, unknown>)[arr] as Array<Record<string, unknown>> | undefined) ?? [];
  return { ...request, [arr]: items.map((i) => ({ ...i, idempotent_id: idempotentId })) };
}
