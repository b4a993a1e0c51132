import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from '../log/logger.js';
import { describeError } from '../errors.js';

/** The leader lock as the daemon needs it (see src/state/lock.ts). */
export interface DaemonLock {
  readonly owner: string;
  tryAcquire(): Promise<boolean>;
  /** false: leadership was lost (connection gone, lease taken over). */
  renew(): Promise<boolean>;
  release(): Promise<void>;
}

export interface DaemonOptions {
  readonly lock: DaemonLock;
  /** One sync cycle; must stop soon after `signal` aborts. */
  readonly runCycle: (signal: AbortSignal, opts: { rescan: boolean; reconcile: boolean }) => Promise<unknown>;
  readonly schedule: string;
  /** Cron expression for the periodic rescan; null: never. */
  readonly rescanSchedule: string | null;
  /** Cron expression for the periodic reconcile (after the cycle of the next tick); null: never. */
  readonly reconcileSchedule?: string | null | undefined;
  readonly leaseMs: number;
  readonly shutdownTimeoutMs: number;
  readonly logger: Logger;
}

export type DaemonState = 'waiting' | 'leader' | 'stopping' | 'stopped';

/** How often a standby repeats that it is still waiting for the lock. */
const WAITING_LOG_EVERY_MS = 10 * 60_000;

/**
 * The `run` loop: wait for the leader lock, then run a cycle on every cron tick (never two
 * at once), renew the lock in between, and shut down within the deadline on request.
 *
 * Leadership is checked before each cycle and renewed every third of the lease. When a
 * renewal fails the running cycle is aborted at once: another instance may take over after
 * the lease, and two senders must never overlap.
 */
export class Daemon {
  private state: DaemonState = 'waiting';
  private cycle: Promise<unknown> | null = null;
  private cycleAbort: AbortController | null = null;
  private beat: Promise<void> | null = null;
  private timers: NodeJS.Timeout[] = [];
  private tasks: ScheduledTask[] = [];
  private rescanDue = false;
  private reconcileDue = false;
  private stopped!: Promise<void>;
  private resolveStopped!: () => void;
  private waitingLoggedAt: number | null = null;

  constructor(private readonly opts: DaemonOptions) {
    this.stopped = new Promise((resolve) => (this.resolveStopped = resolve));
  }

  get status(): { state: DaemonState } {
    return { state: this.state };
  }

  /** Start waiting for leadership; resolves once `stop()` has finished. */
  async start(): Promise<void> {
    const { logger } = this.opts;
    this.tasks.push(
      cron.schedule(this.opts.schedule, () => this.tick(), { noOverlap: true, name: 'attendance-sync-cycle' }),
    );
    if (this.opts.rescanSchedule) {
      this.tasks.push(
        cron.schedule(this.opts.rescanSchedule, () => {
          this.rescanDue = true;
        }, { name: 'attendance-sync-rescan' }),
      );
    }
    if (this.opts.reconcileSchedule) {
      this.tasks.push(
        cron.schedule(this.opts.reconcileSchedule, () => {
          this.reconcileDue = true;
        }, { name: 'attendance-sync-reconcile' }),
      );
    }
    const renewEvery = Math.max(500, Math.floor(this.opts.leaseMs / 3));
    this.timers.push(setInterval(() => void this.heartbeat(), renewEvery));
    logger.info('worker started', { owner: this.opts.lock.owner, schedule: this.opts.schedule });
    await this.heartbeat();
    return this.stopped;
  }

  /**
   * One lock check at a time: a slow database must not stack acquisitions (each would take a
   * connection of its own), and stop() waits for the one in progress.
   */
  private heartbeat(): Promise<void> {
    this.beat ??= this.checkLock().finally(() => {
      this.beat = null;
    });
    return this.beat;
  }

  private async checkLock(): Promise<void> {
    const { lock, logger } = this.opts;
    if (this.state === 'stopping' || this.state === 'stopped') return;
    try {
      if (this.state === 'waiting') {
        if (await lock.tryAcquire()) {
          if (this.state !== 'waiting') {
            // stop() came while the lock was being taken: hand it back, start nothing.
            await lock.release();
            return;
          }
          this.state = 'leader';
          this.waitingLoggedAt = null;
          logger.info('leader lock acquired', { owner: lock.owner });
          void this.tick();
        } else if (this.waitingLoggedAt === null || Date.now() - this.waitingLoggedAt >= WAITING_LOG_EVERY_MS) {
          // A standby says so once, then every few minutes: silence looks like a hang.
          logger.info(this.waitingLoggedAt === null ? 'waiting for the leader lock: another worker is active (standby)' : 'still waiting for the leader lock (standby)', {
            owner: lock.owner,
            retryEverySeconds: Math.round(Math.max(500, Math.floor(this.opts.leaseMs / 3)) / 1000),
          });
          this.waitingLoggedAt = Date.now();
        }
        return;
      }
      if (!(await lock.renew()) && this.state === 'leader') {
        logger.error('leader lock lost: stopping sends until it is acquired again', { owner: lock.owner });
        this.state = 'waiting';
        this.cycleAbort?.abort(new Error('leadership lost'));
      }
    } catch (err) {
      logger.error('leader lock check failed', { error: describeError(err) });
      if (this.state === 'leader') {
        this.state = 'waiting';
        this.cycleAbort?.abort(new Error('leadership uncertain'));
      }
    }
  }

  /** One scheduled tick: run a cycle if leader and none is running. */
  private async tick(): Promise<void> {
    if (this.state !== 'leader' || this.cycle) return;
    const abort = new AbortController();
    this.cycleAbort = abort;
    const rescan = this.rescanDue;
    this.rescanDue = false;
    const reconcile = this.reconcileDue;
    this.reconcileDue = false;
    this.cycle = this.opts
      .runCycle(abort.signal, { rescan, reconcile })
      .catch((err: unknown) => {
        this.opts.logger.error('cycle failed', { error: describeError(err) });
        if (rescan) this.rescanDue = true;
        if (reconcile) this.reconcileDue = true;
      })
      .finally(() => {
        this.cycle = null;
        this.cycleAbort = null;
      });
    await this.cycle;
  }

  /**
   * Graceful stop: no new cycles, abort the running one (it stops claiming and lets in-flight
   * requests finish), wait up to the deadline, release the lock.
   */
  async stop(reason = 'signal'): Promise<void> {
    if (this.state === 'stopping' || this.state === 'stopped') return this.stopped;
    const wasLeader = this.state === 'leader';
    this.state = 'stopping';
    const { logger, lock } = this.opts;
    logger.info('worker stopping', { reason });
    for (const t of this.timers) clearInterval(t);
    for (const task of this.tasks) await task.destroy();
    this.cycleAbort?.abort(new Error('shutdown'));
    // The running cycle, and a lock check in progress (it may be taking the lock right now).
    const pending = [this.cycle, this.beat].filter((p): p is Promise<unknown> => p !== null);
    if (pending.length > 0) {
      const settled = Promise.all(pending.map((p) => p.catch(() => undefined))).then(() => 'done' as const);
      const deadline = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), this.opts.shutdownTimeoutMs).unref());
      if ((await Promise.race([settled, deadline])) === 'timeout') {
        logger.warn('cycle did not finish before the shutdown deadline; in-flight operations will be reclaimed after their lease');
      }
    }
    if (wasLeader) {
      try {
        await lock.release();
      } catch (err) {
        logger.warn('could not release the leader lock', { error: describeError(err) });
      }
    }
    this.state = 'stopped';
    logger.info('worker stopped');
    this.resolveStopped();
    return this.stopped;
  }
}
