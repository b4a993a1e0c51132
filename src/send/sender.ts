import type { Knex } from 'knex';
import type { FeishuClient, UserApprovalInput } from '../feishu/client.js';
import { isFeishuError, type FeishuError } from '../feishu/errors.js';
import type { EmployeeType } from '../feishu/schema.js';
import { KIND_ARRAY } from '../kinds.js';
import type { Logger } from '../log/logger.js';
import { describeError } from '../errors.js';
import { redact } from '../log/redact.js';
import type { Metrics } from '../metrics/metrics.js';
import type { StateTables } from '../state/tables.js';
import { claimDue, findById, markFailed, markRetry, markRevoked, markSent, releaseLeases, type SyncRecord } from '../state/syncRecords.js';

export interface SendCounts {
  sent: number;
  retried: number;
  failed: number;
  dead: number;
  /** Auth or quota trouble stopped sending for this cycle. */
  halted: number;
}

export interface SenderOptions {
  readonly state: Knex;
  readonly t: StateTables;
  readonly client: FeishuClient;
  readonly employeeType: EmployeeType;
  readonly owner: string;
  readonly concurrency: number;
  readonly maxAttempts: number;
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
  /** Lease of a claimed operation; a crashed sender's operations are reclaimed after it. */
  readonly leaseMs: number;
  readonly logger: Logger;
  readonly metrics?: Metrics | undefined;
  readonly random?: () => number;
}

/** Pause after auth or quota errors before the outbox is tried again. */
const HALT_MS = 5 * 60_000;

/**
 * Sends due operations from the outbox: claim a batch (leased), run it with bounded
 * concurrency through the one Feishu client (and so its one rate limiter), record every
 * outcome. Operations on one source key never run at once: the claim only hands out the head
 * of each key.
 */
export class Sender {
  private halted: string | null = null;

  constructor(private readonly o: SenderOptions) {}

  backoff(attempts: number): number {
    const exp = Math.min(this.o.retryMaxMs, this.o.retryBaseMs * 2 ** Math.max(0, attempts - 1));
    const r = (this.o.random ?? Math.random)();
    return Math.round(exp / 2 + (exp / 2) * r);
  }

  /** Send until nothing is due, the signal aborts, or auth / quota errors halt sending. */
  async drain(signal?: AbortSignal): Promise<SendCounts> {
    const counts: SendCounts = { sent: 0, retried: 0, failed: 0, dead: 0, halted: 0 };
    this.halted = null;
    // The first operation goes alone: while the credentials or the quota are broken, every
    // cycle then costs Feishu one call, not one per worker.
    let probe = true;
    try {
      while (!signal?.aborted && !this.halted) {
        const batch = await claimDue(this.o.state, this.o.t, { owner: this.o.owner, limit: this.o.concurrency * 4, leaseMs: this.o.leaseMs });
        if (batch.length === 0) break;
        let next = 0;
        if (probe && !signal?.aborted) {
          probe = false;
          await this.sendOne(batch[next++]!, counts, signal);
        }
        const worker = async () => {
          while (next < batch.length) {
            const op = batch[next++]!;
            if (signal?.aborted || this.halted) {
              continue; // left 'sending': handed back by releaseLeases below
            }
            await this.sendOne(op, counts, signal);
          }
        };
        await Promise.all(Array.from({ length: Math.min(this.o.concurrency, batch.length - next) }, worker));
      }
    } finally {
      // Operations claimed but not started (shutdown, halt) go back to pending at once.
      await releaseLeases(this.o.state, this.o.t, this.o.owner).catch(() => 0);
    }
    if (this.halted) counts.halted = 1;
    return counts;
  }

  private async sendOne(op: SyncRecord, counts: SendCounts, signal?: AbortSignal): Promise<void> {
    const started = Date.now();
    try {
      const approvalId = op.operation === 'create' ? await this.create(op, signal) : await this.revoke(op, signal);
      await markSent(this.o.state, this.o.t, op.id, { owner: this.o.owner, approvalId });
      counts.sent++;
      this.o.metrics?.operations.inc({ kind: op.kind, operation: op.operation, status: 'sent' });
    } catch (err) {
      await this.recordFailure(op, err, counts, signal);
    } finally {
      this.o.metrics?.sendLatency.observe({ operation: op.operation }, (Date.now() - started) / 1000);
    }
  }

  private async create(op: SyncRecord, signal?: AbortSignal): Promise<string> {
    const res = await this.o.client.createUserApproval(this.o.employeeType, op.payload as UserApprovalInput, { signal });
    return res.approvalId;
  }

  /**
   * Undo the create this revoke points at. Its approval_id is known once the create was sent;
   * a create that was attempted but never confirmed may still exist in Feishu, so it is
   * looked up by its idempotent_id before concluding there is nothing to revoke.
   */
  private async revoke(op: SyncRecord, signal?: AbortSignal): Promise<string | null> {
    const create = op.revokesId !== null ? await findById(this.o.state, this.o.t, op.revokesId) : null;
    if (!create) return null;
    const payload = (create.payload ?? {}) as Record<string, unknown>;
    const item = ((payload[KIND_ARRAY[op.kind]] as Array<Record<string, unknown>> | undefined) ?? [])[0] ?? {};
    const lookup = {
      employeeType: this.o.employeeType,
      userId: String(payload.user_id ?? create.userId ?? ''),
      date: String(payload.date ?? ''),
      startTime: typeof item.start_time === 'string' ? item.start_time : undefined,
      endTime: typeof item.end_time === 'string' ? item.end_time : undefined,
    };
    let approvalId = create.approvalId;
    if (!approvalId && create.idempotencyKey && create.attempts > 0) {
      const found = await this.o.client.findByIdempotentId(
        { ...lookup, kind: op.kind, idempotentId: create.idempotencyKey, createdFrom: create.createdAt - 86_400_000 },
        { signal },
      );
      if (found && found.status !== 2) {
        await markRevoked(this.o.state, this.o.t, create.id);
        return found.approvalId;
      }
      approvalId = found?.approvalId ?? null;
    }
    if (approvalId) await this.o.client.revokeApproval(approvalId, op.kind, { signal, lookup });
    await markRevoked(this.o.state, this.o.t, create.id);
    return approvalId;
  }

  private async recordFailure(op: SyncRecord, err: unknown, counts: SendCounts, signal?: AbortSignal): Promise<void> {
    const { state, t, owner, logger } = this.o;
    const now = Date.now();
    const fe: FeishuError | null = isFeishuError(err) ? err : null;
    const code = fe?.feishuCode ?? null;
    const msg = redact(fe?.feishuMsg ?? describeError(err)).slice(0, 2000);
    const errorCode = fe?.code ?? (err as { code?: string }).code ?? 'SEND_ERROR';
    const category = fe?.category ?? (signal?.aborted ? 'aborted' : 'transient');
    const attemptsAfter = op.attempts + 1;
    const metric = (status: string) => this.o.metrics?.operations.inc({ kind: op.kind, operation: op.operation, status });

    if (category === 'aborted') {
      // Shutdown while in flight: due again at once, and safe to send again (idempotent_id).
      // The attempt counts: the request may have reached Feishu and been stored, and a create
      // with no attempt would be superseded without a revoke if its row changed meanwhile.
      await markRetry(state, t, op.id, { owner, nextAttemptAt: now, code, msg: 'interrupted by shutdown', errorCode: 'ABORTED', countAttempt: true });
      return;
    }
    if (category === 'auth' || category === 'quota') {
      if (!this.halted) {
        this.halted = errorCode;
        logger.error(
          category === 'auth'
            ? 'Feishu refused the app credentials or permissions: sending stops until they are fixed'
            : "Feishu's monthly API quota is used up: sending stops",
          { code: errorCode, feishuCode: code, msg, logId: fe?.logId },
        );
      }
      await markRetry(state, t, op.id, { owner, nextAttemptAt: now + HALT_MS, code, msg, errorCode, countAttempt: false });
      counts.retried++;
      metric('retry');
      return;
    }
    if (category === 'rate_limited') {
      const wait = Math.max(1, fe?.resetSeconds ?? 1) * 1000;
      await markRetry(state, t, op.id, { owner, nextAttemptAt: now + wait, code, msg, errorCode, countAttempt: false });
      counts.retried++;
      metric('retry');
      return;
    }
    if (category === 'permanent' || category === 'duplicate') {
      await markFailed(state, t, op.id, { owner, status: 'failed', code, msg, errorCode });
      counts.failed++;
      metric('failed');
      logger.warn('operation failed: needs attention (attendance-sync retry)', { kind: op.kind, sourceKey: op.sourceKey, operation: op.operation, code: errorCode, feishuCode: code, msg, logId: fe?.logId });
      return;
    }
    if (attemptsAfter >= this.o.maxAttempts) {
      await markFailed(state, t, op.id, { owner, status: 'dead', code, msg, errorCode });
      counts.dead++;
      metric('dead');
      logger.error('operation dead after its last attempt', { kind: op.kind, sourceKey: op.sourceKey, operation: op.operation, attempts: attemptsAfter, code: errorCode, feishuCode: code, msg });
      return;
    }
    await markRetry(state, t, op.id, { owner, nextAttemptAt: now + this.backoff(attemptsAfter), code, msg, errorCode, countAttempt: true });
    counts.retried++;
    metric('retry');
  }
}
