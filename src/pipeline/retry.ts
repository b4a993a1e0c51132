import type { Knex } from 'knex';
import { ConfigError } from '../errors.js';
import { isKind, KINDS, type Kind } from '../kinds.js';
import { keyStatuses, retryWithOutcome, type RetryOutcome } from '../state/outbox.js';
import type { StateTables } from '../state/tables.js';

/* Queueing failed or dead operations again: what the `retry` command and the console's POST /api/retry do. */

export interface RetryRequest {
  status: string;
  kind?: string | undefined;
  id?: string | undefined;
}

/** Check a retry request's fields against the configured kinds; throws ConfigError naming the field. */
export function checkRetryRequest(r: RetryRequest, configured: readonly Kind[], configPath: string): void {
  if (r.status !== 'failed' && r.status !== 'dead') throw new ConfigError([`--status: must be failed or dead (got "${r.status}")`], 'invalid arguments');
  if (r.kind !== undefined && !isKind(r.kind)) throw new ConfigError([`--kind: must be one of ${KINDS.join(', ')}`], 'invalid arguments');
  if (r.kind !== undefined && !configured.includes(r.kind as Kind)) {
    throw new ConfigError([`--kind: ${r.kind} is not configured and enabled in ${configPath} (configured: ${configured.join(', ') || 'none'})`], 'invalid arguments');
  }
}

/**
 * What `retry` does once its request is checked: queue the operations again (only what the
 * source still wants, see `retryWithOutcome`) and say what happened, one line per outcome.
 * Shared by the command and the console's POST /api/retry.
 */
export async function performRetry(db: Knex, t: StateTables, r: RetryRequest): Promise<{ outcome: RetryOutcome | null; lines: string[] }> {
  const status = r.status as 'failed' | 'dead';
  if (r.id !== undefined) {
    const known = await keyStatuses(db, t, r.id, r.kind);
    if (known.length === 0) {
      throw new ConfigError([`--id: no operation for source key "${r.id}"${r.kind ? ` of kind ${r.kind}` : ''} in the sync table`], 'invalid arguments');
    }
    if (!known.some((k) => k.status === status)) {
      return { outcome: null, lines: [`nothing to retry: source key "${r.id}" has no ${status} operation (its latest is ${known[known.length - 1]!.status})`] };
    }
  }
  const outcome = await retryWithOutcome(db, t, {
    status,
    ...(r.kind ? { kind: r.kind as Kind } : {}),
    ...(r.id ? { sourceKey: r.id } : {}),
  });
  const n = outcome.requeued;
  const lines = [`${n} ${status} operation(s) queued again${n > 0 ? ': the next cycle sends them' : ''}`];
  if (outcome.superseded > 0) lines.push(`${outcome.superseded} create(s) of a version the source no longer has: superseded (Feishu never stored them)`);
  if (outcome.revokes > 0) lines.push(`${outcome.revokes} create(s) of a version the source no longer has: a revoke is queued (Feishu may hold them)`);
  if (outcome.kept > 0) lines.push(`${outcome.kept} create(s) left ${status}: their source row is invalid now (see status); fix the row first`);
  return { outcome, lines };
}
