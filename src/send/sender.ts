import { setMaxListeners } from 'node:events';
import type { UserApprovalInput } from '../feishu/client.js';
import { FeishuError, FeishuErrorCode, isFeishuError } from '../feishu/errors.js';
import { KIND_ARRAY } from '../kinds.js';
import { describeError } from '../errors.js';
import {
  claimDue,
  findById,
  markRevoked,
  mayExistInFeishu,
  OP_STATUS,
  releaseLeases,
  renewLeases,
  type OutboxOperation,
} from '../state/outbox.js';
import { backoffDelayMs } from '../retryPolicy.js';
import { SentBuffer } from './sentBuffer.js';
import { FailureRecorder } from './failures.js';
import type { SendCounts, SenderOptions } from './types.js';

export type { SendCounts, SenderOptions } from './types.js';
export { TENANT_WIDE_USERS } from './failures.js';

/**
 * Sends due operations from the outbox: claim a batch (leased), run it with bounded
 * concurrency through the one Feishu client (and so its one rate limiter), record every
 * outcome. Operations on one source key never run at once: the claim only hands out the head
 * of each key.
 */
export class Sender {
  private readonly failures: FailureRecorder;

  constructor(private readonly o: SenderOptions) {
    this.failures = new FailureRecorder(o, (attempts) => this.backoff(attempts));
  }

  backoff(attempts: number): number {
    return backoffDelayMs(attempts, this.o.retry, this.o.random);
  }

  /**
   * Send until nothing is due, the signal aborts, or auth / quota errors halt sending.
   *
   * Workers take operations from a local queue that is refilled by a claim as soon as it runs
   * low, so no worker waits for the slowest call of a batch. Successes are written to the
   * state database in batches (one UPDATE for up to `SENT_BATCH` rows, or every
   * `SENT_FLUSH_MS`): a crash before such a write leaves the rows `sending`, and sending them
   * again with the same idempotent_id stores nothing twice.
   */
  async drain(signal?: AbortSignal): Promise<SendCounts> {
    const counts: SendCounts = { sent: 0, retried: 0, failed: 0, dead: 0, halted: 0 };
    this.failures.reset();
    // Every call in flight (and every call waiting for the rate limiter) listens to the signal.
    if (signal) setMaxListeners(Math.max(10, this.o.concurrency * 4), signal);
    const queue: OutboxOperation[] = [];
    const sent = new SentBuffer(this.o.state, this.o.t, this.o.owner);
    const stop = () => signal?.aborted === true || this.failures.halted !== null;
    let claiming: Promise<number> | null = null;
    // Claimed and not yet recorded (queued or in flight): their leases are renewed while the
    // drain runs, and the claim never hands them out again.
    const held = new Set<number>();
    let renewing: Promise<unknown> = Promise.resolve();
    const renewal = setInterval(() => {
      renewing = renewing
        .then(() => {
          const ids = [...held, ...this.failures.scopeStreak.map((x) => x.op.id)];
          return ids.length > 0 ? renewLeases(this.o.state, this.o.t, this.o.owner, ids, { leaseMs: this.o.leaseMs }) : 0;
        })
        .catch((err: unknown) => this.o.logger.warn('could not renew the leases of operations in flight', { error: describeError(err) }));
    }, Math.max(50, Math.floor(this.o.leaseMs / 3)));
    let inFlight = 0;
    // Bumped whenever an operation finishes: it may unblock the next operation of its key.
    let finished = 0;
    let claimedAtFinished = -1;
    const claim = (): Promise<number> => {
      claiming ??= (async () => {
        const mark = finished;
        await sent.flush(); // a sent revoke must show as sent before its key's next operation can be claimed
        const batch = await claimDue(this.o.state, this.o.t, { owner: this.o.owner, limit: this.o.concurrency * 4, leaseMs: this.o.leaseMs, exclude: [...held, ...this.failures.scopeStreak.map((x) => x.op.id)] });
        for (const op of batch) held.add(op.id);
        queue.push(...batch);
        if (batch.length === 0) claimedAtFinished = mark;
        return batch.length;
      })().finally(() => (claiming = null));
      return claiming;
    };
    const run = async (op: OutboxOperation) => {
      inFlight++;
      try {
        await this.sendOne(op, counts, sent, signal);
      } finally {
        held.delete(op.id);
        inFlight--;
        finished++;
      }
    };
    let waiters: Array<() => void> = [];
    const wake = () => {
      const w = waiters;
      waiters = [];
      for (const r of w) r();
    };
    const worker = async () => {
      while (!stop()) {
        const op = queue.shift();
        if (op) {
          if (queue.length < this.o.concurrency && !claiming) void claim().catch(() => 0);
          await run(op);
          wake();
          continue;
        }
        if (claiming) {
          await claiming;
          continue;
        }
        // The last claim found nothing and nothing has finished since: done, unless calls still
        // in flight may unblock more (a revoke before its key's create).
        if (claimedAtFinished === finished) {
          if (inFlight === 0) return;
          await new Promise<void>((r) => waiters.push(r));
          continue;
        }
        await claim();
      }
    };
    let failure: unknown = null;
    try {
      // The first operation goes alone: while the credentials or the quota are broken, every
      // cycle then costs Feishu one call, not one per worker.
      if (!stop() && (await claim()) > 0 && !stop()) await run(queue.shift()!);
      const results = await Promise.allSettled(Array.from({ length: this.o.concurrency }, worker));
      if (claiming) await claiming;
      const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (rejected) throw rejected.reason;
    } catch (err) {
      failure = err;
    } finally {
      clearInterval(renewal);
      await renewing;
      // A streak too short to halt: those users really are unknown or out of scope.
      await this.failures.endScopeStreak(counts).catch((err: unknown) => (failure ??= err));
      await sent.flush().catch((err: unknown) => (failure ??= err));
      // Operations claimed but never started (shutdown, halt) go back to pending at once.
      await releaseLeases(this.o.state, this.o.t, this.o.owner, { ids: queue.map((q) => q.id) }).catch(() => 0);
    }
    if (failure) throw failure;
    if (this.failures.halted) {
      counts.halted = 1;
      if (this.failures.haltReason) counts.haltReason = this.failures.haltReason;
    }
    return counts;
  }

  private async sendOne(op: OutboxOperation, counts: SendCounts, sent: SentBuffer, signal?: AbortSignal): Promise<void> {
    const started = Date.now();
    try {
      const approvalId = op.operation === 'create' ? await this.create(op, signal) : await this.revoke(op, signal);
      await sent.add(op.id, approvalId);
      await this.failures.endScopeStreak(counts).catch((err: unknown) => this.o.logger.warn('could not record refused operations; their leases run out and they are sent again', { error: describeError(err) }));
      counts.sent++;
      this.o.metrics?.operations.inc({ kind: op.kind, operation: op.operation, status: 'sent' });
    } catch (err) {
      await this.failures.recordFailure(op, err, counts, signal);
    } finally {
      this.o.metrics?.sendLatency.observe({ operation: op.operation }, (Date.now() - started) / 1000);
    }
  }

  private async create(op: OutboxOperation, signal?: AbortSignal): Promise<string> {
    try {
      // Planned at createdAt: no attempt of it (a retry days later, a resend) can be older.
      const res = await this.o.client.createUserApproval(this.o.employeeType, op.payload as UserApprovalInput, { signal, firstAttemptAt: op.createdAt });
      return res.approvalId;
    } catch (err) {
      // A refusal speaks for this attempt only. When an earlier one may have been stored (its
      // reply lost, then `retry`), Feishu may hold the record and still refuse it now (a period
      // sealed meanwhile): look it up before the create is recorded as failed, so that "failed
      // and refused" always means "not in Feishu" to the planner.
      if (isFeishuError(err) && err.category === 'permanent' && mayExistInFeishu({ ...op, status: OP_STATUS.PENDING })) {
        let found: string | null;
        try {
          found = await this.findStored(op, signal);
        } catch (lookupErr) {
          if (isFeishuError(lookupErr) && ['auth', 'quota', 'rate_limited'].includes(lookupErr.category)) throw lookupErr;
          // Unknown whether Feishu holds it: retried later, never recorded as refused.
          throw new FeishuError(FeishuErrorCode.AMBIGUOUS, {
            endpoint: 'create',
            httpStatus: err.httpStatus,
            feishuCode: err.feishuCode,
            feishuMsg: err.feishuMsg,
            logId: err.logId,
            mayHaveApplied: true,
            causeText: `refused (${err.code}), and looking up an earlier attempt failed`,
          });
        }
        if (found) return found;
      }
      throw err;
    }
  }

  /** The approval_id Feishu holds, approved, for this create's idempotent_id; null if none is found. */
  private async findStored(op: OutboxOperation, signal?: AbortSignal): Promise<string | null> {
    const payload = (op.payload ?? {}) as Record<string, unknown>;
    const item = ((payload[KIND_ARRAY[op.kind]] as Array<Record<string, unknown>> | undefined) ?? [])[0] ?? {};
    if (!op.idempotencyKey) return null;
    const found = await this.o.client.findByIdempotentId(
      {
        employeeType: this.o.employeeType,
        userId: String(payload.user_id ?? op.userId ?? ''),
        date: String(payload.date ?? ''),
        kind: op.kind,
        idempotentId: op.idempotencyKey,
        startTime: typeof item.start_time === 'string' ? item.start_time : undefined,
        endTime: typeof item.end_time === 'string' ? item.end_time : undefined,
        // No attempt of the create is older than its planning: search creation dates from there.
        createdFrom: op.createdAt,
        statuses: [2],
      },
      { signal },
    );
    return found?.approvalId ?? null;
  }

  /**
   * Undo the create this revoke points at. Its approval_id is known once the create was sent;
   * a create that was attempted but never confirmed may still exist in Feishu, so it is
   * looked up by its idempotent_id before concluding there is nothing to revoke.
   */
  private async revoke(op: OutboxOperation, signal?: AbortSignal): Promise<string | null> {
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
      // No attempt of the create is older than its planning: search creation dates from there.
      createdFrom: create.createdAt,
    };
    let approvalId = create.approvalId;
    // Only creates that may exist are revoked (mayExistInFeishu), whatever their attempts say.
    if (!approvalId && create.idempotencyKey) {
      const found = await this.o.client.findByIdempotentId({ ...lookup, kind: op.kind, idempotentId: create.idempotencyKey }, { signal });
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

  /** A success (or the end of the drain) ends a 1220004 / 1220005 streak: its operations fail one by one. */
}
