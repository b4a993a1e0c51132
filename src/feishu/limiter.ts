import { performance } from 'node:perf_hooks';
import { abortReason } from './retry.js';

export interface RateLimiterOptions {
  /** Calls per second the server allows (default 50, Feishu's limit for our endpoints). `Infinity`: no limit. */
  ratePerSecond?: number;
  /**
   * How much later one request may reach the server than another one released after it
   * (network and event-loop jitter), in ms. The limiter counts over `1000 + slackMs`, so
   * that jitter up to this much cannot push a call into a server second that is already
   * full. Default 20 ms (at 50/s: one call every 20.4 ms, 49 calls/s).
   */
  slackMs?: number;
  /** Monotonic milliseconds; injectable for tests. */
  now?: () => number;
}

export interface RateLimiterStats {
  ratePerSecond: number;
  acquired: number;
  /** Sum over all calls of the time spent waiting for a slot. */
  waitedMs: number;
  queued: number;
}

interface Waiter {
  enqueuedAt: number;
  resolve: () => void;
  reject: (reason: unknown) => void;
  cancelled: boolean;
  cleanup: () => void;
}

/**
 * The one rate limiter shared by every Feishu call of a process (token fetches included).
 *
 * Why not a plain token bucket: the server counts calls in fixed one-second windows. A bucket
 * of capacity N refilling N/s can release N calls at the end of one window and N more at the
 * start of the next, i.e. up to 2N in one server second. Two rules together prevent that:
 *
 * 1. Even spacing (a bucket of capacity one): a slot every `(1000 + slackMs) / N` ms, so the
 *    calls are spread instead of bunched.
 * 2. A sliding log of the last N actual release times: a call is released only if the N-th
 *    previous release is at least `1000 + slackMs` ms ago. This is the hard guarantee. It
 *    holds however late timers fire (a stalled event loop cannot catch up in a burst), and
 *    because it covers `1000 + slackMs` ms, any one-second window of the server, wherever its
 *    boundary falls, receives at most N calls as long as requests reach the server within
 *    `slackMs` of one another's relative order.
 *
 * Waiters are served first in, first out; an aborted waiter leaves the queue.
 */
export class RateLimiter {
  readonly ratePerSecond: number;
  readonly windowMs: number;
  readonly spacingMs: number;
  private readonly now: () => number;
  private readonly unlimited: boolean;
  /** Ring buffer of the last N release times. */
  private readonly log: Float64Array;
  private logCount = 0;
  private logHead = 0;
  /** Earliest time of the next release by the spacing rule. */
  private nextAt = -Infinity;
  private queue: Waiter[] = [];
  private queueHead = 0;
  /** Waiters in the queue that have not aborted. */
  private live = 0;
  private timer: NodeJS.Timeout | undefined;
  private acquiredCount = 0;
  private waitedTotalMs = 0;

  constructor(opts: RateLimiterOptions = {}) {
    const rate = opts.ratePerSecond ?? 50;
    if (!(rate > 0)) throw new RangeError('ratePerSecond must be positive');
    if (Number.isFinite(rate) && rate > 1_000_000) throw new RangeError('ratePerSecond above 1,000,000: use Infinity for no limit');
    this.ratePerSecond = rate;
    this.unlimited = !Number.isFinite(rate);
    const slack = Math.max(0, opts.slackMs ?? 20);
    this.windowMs = 1000 + slack;
    this.spacingMs = this.unlimited ? 0 : this.windowMs / rate;
    this.now = opts.now ?? (() => performance.now());
    this.log = new Float64Array(this.unlimited ? 0 : Math.ceil(rate));
  }

  /**
   * Wait for a slot. Rejects with the signal's reason if it aborts first. `urgent` joins at the
   * head of the queue (the token fetch that every queued call is waiting for).
   */
  acquire(signal?: AbortSignal, urgent = false): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    if (this.unlimited) {
      this.acquiredCount += 1;
      return Promise.resolve();
    }
    const now = this.now();
    if (this.live === 0 && now >= this.earliest()) {
      this.release(now, now);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { enqueuedAt: now, resolve, reject, cancelled: false, cleanup: () => undefined };
      if (signal) {
        const onAbort = (): void => {
          waiter.cancelled = true;
          this.live -= 1;
          reject(abortReason(signal));
          this.schedule();
        };
        signal.addEventListener('abort', onAbort, { once: true });
        waiter.cleanup = () => signal.removeEventListener('abort', onAbort);
      }
      if (!urgent) this.queue.push(waiter);
      else if (this.queueHead > 0) this.queue[--this.queueHead] = waiter;
      else this.queue.unshift(waiter);
      this.live += 1;
      this.schedule();
    });
  }

  /** Total time callers spent waiting for slots, in ms (for metrics). */
  get waitedMs(): number {
    return this.waitedTotalMs;
  }

  stats(): RateLimiterStats {
    return { ratePerSecond: this.ratePerSecond, acquired: this.acquiredCount, waitedMs: this.waitedTotalMs, queued: this.live };
  }

  /** The earliest time both rules allow a release. */
  private earliest(): number {
    const n = this.log.length;
    const byLog = this.logCount < n ? -Infinity : this.log[this.logHead]! + this.windowMs;
    return Math.max(this.nextAt, byLog);
  }

  /** Record a release at `now` for a call that was due at `due` (its slot, or its arrival if later). */
  private release(now: number, due: number): void {
    const n = this.log.length;
    // Overwrite the oldest entry (logHead) once full; logHead then points at the new oldest.
    if (this.logCount < n) {
      this.log[(this.logHead + this.logCount) % n] = now;
      this.logCount += 1;
    } else {
      this.log[this.logHead] = now;
      this.logHead = (this.logHead + 1) % n;
    }
    // The next slot follows the schedule, not the moment the timer actually fired: timers fire
    // a little late, and charging that lateness to every call would erode the rate. Catch-up is
    // limited to half a spacing, so two releases are never closer than half a spacing; after a
    // longer stall the schedule restarts from now (and the log rule caps the rest).
    this.nextAt = Math.max(due, now - this.spacingMs / 2) + this.spacingMs;
    this.acquiredCount += 1;
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    // Run on a fresh tick even if a slot is free: a waiter just queued behind others must not
    // overtake them, and releasing from inside acquire() would re-enter the queue logic.
    this.timer = setTimeout(() => this.pump(), 0);
  }

  private pump(): void {
    this.timer = undefined;
    for (;;) {
      while (this.queueHead < this.queue.length && this.queue[this.queueHead]!.cancelled) this.queueHead++;
      if (this.queueHead >= this.queue.length) {
        this.queue = [];
        this.queueHead = 0;
        return;
      }
      const now = this.now();
      const earliest = this.earliest();
      if (now < earliest) {
        this.timer = setTimeout(() => this.pump(), Math.max(1, Math.ceil(earliest - now)));
        return;
      }
      const waiter = this.queue[this.queueHead]!;
      this.queueHead++;
      if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.queueHead);
        this.queueHead = 0;
      }
      this.live -= 1;
      this.release(now, Math.max(earliest, waiter.enqueuedAt));
      this.waitedTotalMs += now - waiter.enqueuedAt;
      waiter.cleanup();
      waiter.resolve();
    }
  }
}
