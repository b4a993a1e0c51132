import type { AnyKindConfig } from '../config/schema.js';
import type { Kind } from '../kinds.js';
import type { SourceRow } from '../mapping/map.js';
import { withTypeTable } from '../mapping/typeTable.js';
import { mapRows, type PipelineDeps } from '../pipeline/deps.js';
import { addCounts, emptyPlanCounts, planRows, type PlanCounts } from '../plan/plan.js';
import { keyBinding } from '../source/keyset.js';
import { sourceRelation } from '../source/relation.js';
import { invalidKeys } from '../state/kindState.js';
import { refusedCreates } from '../state/outbox.js';
import { chunks } from '../state/records.js';
import { ContactClient } from './contact.js';
import { contactIdType, resolveRows, resolveSpec, type ResolverDeps } from './users.js';

/*
 * The steps a cycle adds for kinds that resolve their employees or read their types from the
 * database: the type table before a kind is read, addresses resolved before rows are mapped,
 * and records judged again when a resolution has expired or Feishu refused a resolved id.
 */

const contacts = new WeakMap<object, ContactClient>();

/** One contact client per pipeline (its own rate budget; the attendance client's token cache). */
export function contactClientOf(deps: Pick<PipelineDeps, 'config' | 'client' | 'logger'>): ContactClient {
  let c = contacts.get(deps.client);
  if (!c) {
    c = new ContactClient({ baseUrl: deps.config.feishu.base_url, tokens: deps.client.tokens, timeoutMs: deps.config.feishu.timeout_ms, logger: deps.logger, backoffBaseMs: Math.min(deps.config.feishu.retry_base_ms, 2_000), backoffCapMs: Math.min(deps.config.feishu.retry_max_ms, 30_000) });
    contacts.set(deps.client, c);
  }
  return c;
}

function resolverDeps(deps: PipelineDeps, signal?: AbortSignal): ResolverDeps {
  return { config: deps.config, state: deps.state, t: deps.t, contact: contactClientOf(deps), logger: deps.logger, signal };
}

const reported = new WeakMap<object, Map<Kind, string>>();

/** The kind's configuration as the cycle maps with it: `types` resolved from its types_query. */
export async function prepareKind(deps: PipelineDeps, kind: Kind, cfg: AnyKindConfig): Promise<AnyKindConfig> {
  const { cfg: merged, table } = await withTypeTable({ source: deps.source, state: deps.state, t: deps.t }, kind, cfg);
  if (table && table.problems.length > 0) {
    // Once per change of the problems, not once per cycle.
    let seen = reported.get(deps);
    if (!seen) reported.set(deps, (seen = new Map()));
    const text = table.problems.join('\n');
    if (seen.get(kind) !== text) {
      seen.set(kind, text);
      for (const p of table.problems) deps.logger.warn(p, { kind });
    }
  }
  return merged;
}

/** Rows ready for the mapper: e-mails or mobiles replaced by Feishu user ids. */
export function prepareRows(deps: PipelineDeps, kind: Kind, cfg: AnyKindConfig, rows: readonly SourceRow[], signal?: AbortSignal): Promise<SourceRow[]> {
  if (!resolveSpec(cfg)) return Promise.resolve(rows as SourceRow[]);
  return resolveRows(resolverDeps(deps, signal), kind, cfg, rows);
}

/**
 * Records whose resolution may have changed are read again by key and planned:
 * - invalid records, once an address Feishu did not know has outlived the TTL;
 * - creates Feishu refused with 1220004 ("user_id is not exist") for a user id that came
 *   from the cache before the refusal: that answer is dropped and the address asked again,
 *   and a different id gives a new create.
 */
export async function reevaluateResolution(deps: PipelineDeps, kind: Kind, cfg: AnyKindConfig, signal?: AbortSignal, now = Date.now()): Promise<PlanCounts> {
  const total = emptyPlanCounts();
  const spec = resolveSpec(cfg);
  if (!spec) return total;
  const { state, t } = deps;
  const idType = contactIdType(deps.config);
  const cache = () => state(t.userResolution).where({ address_kind: spec.kind, id_type: idType });
  const refused = await refusedCreates(state, t, kind, 1220004);
  const keys = new Set<string>();
  for (const r of refused) {
    if (!r.user_id) continue;
    const n = await cache().where({ user_id: r.user_id }).where('resolved_at', '<', Number(r.updated_at)).where('resolved_at', '>', 0).update({ resolved_at: 0 });
    if (Number(n) > 0) keys.add(r.source_key);
  }
  const expiredUnknown = Number(((await cache().whereNull('user_id').where('resolved_at', '<=', now - deps.config.feishu.resolve_ttl_hours * 3_600_000).count({ n: '*' }).first()) as { n?: number | string } | undefined)?.n ?? 0);
  if (expiredUnknown > 0) for (const k of await invalidKeys(state, t, kind)) if (k !== '(no key)') keys.add(k);
  if (keys.size === 0) return total;
  for (const part of chunks([...keys], 500)) {
    if (signal?.aborted) return total;
    const rows = (await sourceRelation(deps.source, cfg).select('*').whereIn(cfg.key, part.map(keyBinding))) as SourceRow[];
    if (rows.length === 0) continue;
    const ready = await prepareRows(deps, kind, cfg, rows, signal);
    addCounts(total, await planRows({ state, t, namespace: deps.config.sync.namespace, logger: deps.logger }, kind, mapRows(deps.config, kind, cfg, ready)));
  }
  // Answers no row asked for again (the address was corrected at the source): dropped, so
  // they do not bring the records back every cycle.
  await cache().where((q) => q.whereNull('user_id').where('resolved_at', '<=', now - deps.config.feishu.resolve_ttl_hours * 3_600_000).orWhere('resolved_at', 0)).delete();
  deps.logger.info('records judged again after their user resolution expired or was refused', { kind, records: keys.size, created: total.created, stillInvalid: total.invalid });
  return total;
}
