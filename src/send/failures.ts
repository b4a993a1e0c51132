import { FeishuError, isFeishuError } from '../feishu/errors.js';
import { describeError } from '../errors.js';
import { redact } from '../log/redact.js';
import { markFailed, markRetry, regenerateCreate, type OutboxOperation } from '../state/outbox.js';
import { idempotencyKey, withIdempotentId } from '../identity.js';
import type { SendCounts, SenderOptions } from './types.js';

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

/**
 * What the sender records when a call fails: retry later, failed, dead, or a halt of all
 * sending (auth, quota, a tenant-wide scope problem). Holds the cycle's halt state.
 */
export class FailureRecorder {
  halted: string | null = null;
  haltReason: string | null = null;
  /**
   * Operations refused with 1220004 / 1220005 since the last success, not yet recorded: failed
   * if a success follows (a user really out of scope), pending if the streak halts sending.
   */
  scopeStreak: Array<{ op: OutboxOperation; err: FeishuError }> = [];

  constructor(
    private readonly o: SenderOptions,
    private readonly backoff: (attempts: number) => number,
  ) {}

  /** A new send run: not halted, no streak. */
  reset(): void {
    this.halted = null;
    this.haltReason = null;
    this.scopeStreak = [];
  }

  async endScopeStreak(counts: SendCounts): Promise<void> {
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

  async recordFailure(op: OutboxOperation, err: unknown, counts: SendCounts, signal?: AbortSignal): Promise<void> {
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
    if (attemptsAfter >= this.o.retry.maxAttempts) {
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
