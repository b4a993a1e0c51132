import { setMaxListeners } from 'node:events';
import type { Knex } from 'knex';
import type { FeishuClient, UserApprovalInput } from '../feishu/client.js';
import { FeishuError, FeishuErrorCode, isFeishuError } from '../feishu/errors.js';
import type { EmployeeType } from '../feishu/schema.js';
import { KIND_ARRAY, withIdempotentId } from '../kinds.js';
import type { Logger } from '../log/logger.js';
import { describeError } from '../errors.js';
import { redact } from '../log/redact.js';
import type { Metrics } from '../metrics/metrics.js';
import type { StateTables } from '../state/tables.js';
import {
  claimDue,
  findById,
  markFailed,
  markRetry,
  markRevoked,
  markSentMany,
  mayExistInFeishu,
  OP_STATUS,
  regenerateCreate,
  releaseLeases,
  renewLeases,
  type OutboxOperation,
} from '../state/outbox.js';
import { idempotencyKey } from '../plan/version.js';

export interface SendCounts {
  sent: number;
  retried: number;
  failed: number;
  dead: number;
  /** Auth or quota trouble stopped sending for this cycle. */
  halted: number;
  /** Why sending was halted (one line for `status` and /healthz). */
  haltReason?: string;
}

export interface SenderOptions {
  readonly state: Knex;
  readonly t: StateTables;
  readonly client: FeishuClient;
  readonly employeeType: EmployeeType;
  /** sync.namespace: part of every idempotency key. */
  readonly namespace: string;
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
 * 1220004 / 1220005 for this many different users in a row (no success between) means the
 * tenant, not the users, is misconfigured: "API 接入" not done in the attendance console, or
 * the app's data scope. Sending halts then, like on an auth error, instead of failing every
 * record one by one.
 */
export const TENANT_WIDE_USERS = 5;
const SCOPE_CODES = new Set([1220004, 1220005]);

const SENT_BATCH = 64;
const SENT_FLUSH_MS = 250;

/** Successes waiting to be written: one UPDATE per batch instead of one per call. */
class SentBuffer {
  private items: Array<{ id: number; approvalId: string | null }> = [];
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Knex,
    private readonly t: StateTables,
    private readonly owner: string,
  ) {}

  async add(id: number, approvalId: string | null): Promise<void> {
    this.items.push({ id, approvalId });
    if (this.items.length >= SENT_BATCH) await this.flush();
    else this.timer ??= setTimeout(() => void this.flush().catch(() => undefined), SENT_FLUSH_MS);
  }

  /** Write what is buffered; concurrent callers wait for the same writes, in order. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const items = this.items;
    this.items = [];
    if (items.length > 0) this.writing = this.writing.then(() => markSentMany(this.db, this.t, items, { owner: this.owner }).then(() => undefined));
    return this.writing;
  }
}

/**
 * Sends due operations from the outbox: claim a batch (leased), run it with bounded
 * concurrency through the one Feishu client (and so its one rate limiter), record every
 * outcome. Operations on one source key never run at once: the claim only hands out the head
 * of each key.
 */
export class Sender {
  private halted: string | null = null;
  private haltReason: string | null = null;
  /**
   * Operations refused with 1220004 / 1220005 since the last success, not yet recorded: failed
   * if a success follows (a user really out of scope), pending if the streak halts sending.
   */
  private scopeStreak: Array<{ op: OutboxOperation; err: FeishuError }> = [];

  constructor(private readonly o: SenderOptions) {}

  backoff(attempts: number): number {
    const exp = Math.min(this.o.retryMaxMs, this.o.retryBaseMs * 2 ** Math.max(0, attempts - 1));
    const r = (this.o.random ?? Math.random)();
    return Math.round(exp / 2 + (exp / 2) * r);
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
    this.halted = null;
    this.haltReason = null;
    this.scopeStreak = [];
    // Every call in flight (and every call waiting for the rate limiter) listens to the signal.
    if (signal) setMaxListeners(Math.max(10, this.o.concurrency * 4), signal);
    const queue: OutboxOperation[] = [];
    const sent = new SentBuffer(this.o.state, this.o.t, this.o.owner);
    const stop = () => signal?.aborted === true || this.halted !== null;
    let claiming: Promise<number> | null = null;
    // Claimed and not yet recorded (queued or in flight): their leases are renewed while the
    // drain runs, and the claim never hands them out again.
    const held = new Set<number>();
    let renewing: Promise<unknown> = Promise.resolve();
    const renewal = setInterval(() => {
      renewing = renewing
        .then(() => {
          const ids = [...held, ...this.scopeStreak.map((x) => x.op.id)];
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
        const batch = await claimDue(this.o.state, this.o.t, { owner: this.o.owner, limit: this.o.concurrency * 4, leaseMs: this.o.leaseMs, exclude: [...held, ...this.scopeStreak.map((x) => x.op.id)] });
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
      await this.endScopeStreak(counts).catch((err: unknown) => (failure ??= err));
      await sent.flush().catch((err: unknown) => (failure ??= err));
      // Operations claimed but never started (shutdown, halt) go back to pending at once.
      await releaseLeases(this.o.state, this.o.t, this.o.owner, { ids: queue.map((q) => q.id) }).catch(() => 0);
    }
    if (failure) throw failure;
    if (this.halted) {
      counts.halted = 1;
      if (this.haltReason) counts.haltReason = this.haltReason;
    }
    return counts;
  }

  private async sendOne(op: OutboxOperation, counts: SendCounts, sent: SentBuffer, signal?: AbortSignal): Promise<void> {
    const started = Date.now();
    try {
      const approvalId = op.operation === 'create' ? await this.create(op, signal) : await this.revoke(op, signal);
      await sent.add(op.id, approvalId);
      await this.endScopeStreak(counts).catch((err: unknown) => this.o.logger.warn('could not record refused operations; their leases run out and they are sent again', { error: describeError(err) }));
      counts.sent++;
      this.o.metrics?.operations.inc({ kind: op.kind, operation: op.operation, status: 'sent' });
    } catch (err) {
      await this.recordFailure(op, err, counts, signal);
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
  private async endScopeStreak(counts: SendCounts): Promise<void> {
    if (this.scopeStreak.length === 0) return;
    const streak = this.scopeStreak;
    this.scopeStreak = [];
    for (const { op, err } of streak) await this.recordFailed(op, err, counts);
  }

  private async recordFailed(op: OutboxOperation, fe: FeishuError, counts: SendCounts): Promise<void> {
    const code = fe.feishuCode ?? null;
    const msg = redact(fe.feishuMsg ?? fe.message).slice(0, 2000);
    await markFailed(this.o.state, this.o.t, op.id, { owner: this.o.owner, status: 'failed', code, msg, errorCode: fe.code });
    counts.failed++;
    this.o.metrics?.operations.inc({ kind: op.kind, operation: op.operation, status: 'failed' });
    this.o.logger.warn('operation failed: needs attention (attendance-sync retry)', { kind: op.kind, sourceKey: op.sourceKey, operation: op.operation, code: fe.code, feishuCode: code, msg, logId: fe.logId });
  }

  private async recordFailure(op: OutboxOperation, err: unknown, counts: SendCounts, signal?: AbortSignal): Promise<void> {
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
    if (fe && SCOPE_CODES.has(fe.feishuCode ?? -1) && category === 'permanent') {
      if (this.halted) {
        // Sending has stopped: what was in flight stays pending, never failed for the tenant's setup.
        await markRetry(state, t, op.id, { owner, nextAttemptAt: now + HALT_MS, code, msg, errorCode, countAttempt: false });
        counts.retried++;
        metric('retry');
        return;
      }
      this.scopeStreak.push({ op, err: fe });
      const users = new Set(this.scopeStreak.map((x) => x.op.userId ?? x.op.sourceKey));
      if (users.size < TENANT_WIDE_USERS) return;
      this.halted = 'FEISHU_TENANT_SCOPE';
      this.haltReason = `Feishu answered ${[...new Set(this.scopeStreak.map((x) => x.err.feishuCode))].join('/')} for ${users.size} different users in a row: attendance "API 接入" or the app's data scope is not set up for this tenant`;
      logger.error(`${this.haltReason}; sending stops until it is fixed`, { code: 'FEISHU_TENANT_SCOPE', feishuCode: code, msg, logId: fe.logId });
      const streak = this.scopeStreak;
      this.scopeStreak = [];
      for (const x of streak) {
        await markRetry(state, t, x.op.id, { owner, nextAttemptAt: now + HALT_MS, code: x.err.feishuCode ?? null, msg: redact(x.err.feishuMsg ?? '').slice(0, 2000), errorCode: x.err.code, countAttempt: false });
        counts.retried++;
        this.o.metrics?.operations.inc({ kind: x.op.kind, operation: x.op.operation, status: 'retry' });
      }
      return;
    }
    if (category === 'auth' || category === 'quota') {
      if (!this.halted) {
        this.halted = errorCode;
        this.haltReason =
          category === 'auth' ? `Feishu refused the app credentials or permissions (${errorCode}${code !== null ? ` ${code}` : ''})` : "Feishu's monthly API quota is used up";
        logger.error(
          category === 'auth'
            ? 'Feishu refused the app credentials or permissions: sending stops until they are fixed'
            : "Feishu's monthly API quota is used up (99991403): sending stops for this cycle; operations stay pending and the next cycle tries one call first",
          { code: errorCode, feishuCode: code, msg, logId: fe?.logId },
        );
      }
      // A quota refusal is due again at once: the halt ends this cycle's sending, and the next
      // cycle's lone first operation is the probe (a refused call does not count against it).
      await markRetry(state, t, op.id, { owner, nextAttemptAt: category === 'quota' ? now : now + HALT_MS, code, msg, errorCode, countAttempt: false });
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
    if (category === 'duplicate' && op.operation === 'create' && fe?.approvalId && op.payload) {
      // The key belongs to an approval that was withdrawn: the record was cancelled and then
      // approved again with the same content, and the state that knew the later generation
      // was lost (a replay). A withdrawn approval cannot come back, so the create moves on to
      // the next generation's key; if Feishu holds that one, it is found and matched.
      const generation = op.generation + 1;
      const key = idempotencyKey({ namespace: this.o.namespace, kind: op.kind, sourceKey: op.sourceKey, version: op.version, generation });
      const moved = await regenerateCreate(state, t, op.id, {
        owner,
        generation,
        idempotencyKey: key,
        payload: withIdempotentId(op.payload, op.kind, key),
        code,
        msg,
        errorCode,
      });
      if (moved) {
        logger.info('create moved to the next generation: its key belongs to a withdrawn approval', { kind: op.kind, sourceKey: op.sourceKey, generation, withdrawn: fe.approvalId });
        counts.retried++;
        metric('retry');
        return;
      }
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
