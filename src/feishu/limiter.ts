import { performance } from 'node:perf_hooks';
import { abortReason } from './retry.js';

export interface RateLimiterOptions {
  /** Calls per second the server allows (default 50, Feishu's limit for our endpoints). `Infinity`: no limit. */
  ratePerSecond?: number;
  /**
   * How much later one request may reach the server than another one sent after it (network
   * jitter, the server's own delays), in ms. The limiter counts over `1000 + slack`, so that
   * jitter up to this much cannot push a call into a server second that is already full.
   * This is the floor; the slack widens on its own (see `maxSlackMs`). Default 20 ms.
   */
  slackMs?: number;
  /**
   * The most the slack widens to after a throttled answer or measured send delays. Default
   * 30 ms: at 50/s one call every 20.6 ms, 48.5 calls/s.
   */
  maxSlackMs?: number;
  /** Half-life of the widening, ms: it decays back towards `slackMs` this slowly. Default 60 s. */
  decayHalfLifeMs?: number;
  /**
   * Calls released together while callers queue (the spacing rule becomes a bucket of this
   * capacity): one wake-up of the process sends a group instead of one call, which is most of
   * a call's CPU at 50/s. The sliding log still caps every window. Default 1 (even spacing).
   */
  burst?: number;
  /** Monotonic milliseconds; injectable for tests. */
  now?: () => number;
}

export interface RateLimiterStats {
  ratePerSecond: number;
  acquired: number;
  /** Sum over all calls of the time spent waiting for a slot. */
  waitedMs: number;
  queued: number;
  /** The slack now in force, ms (the floor, or wider after throttling or send delays). */
  slackMs: number;
  /** Throttled answers reported with `throttled()`. */
  throttled: number;
  /** Largest release-to-send delay reported with `sent()`, ms. */
  maxSendDelayMs: number;
  /** Largest delay of an answer beyond the shortest round trip reported with `answered()`, ms. */
  maxHeldMs: number;
}

/**
 * A granted slot: pass it to `sent()` when the request leaves, so the limiter counts the send,
 * not the release. -1 when the limiter is unlimited.
 */
export type Slot = number;

interface Waiter {
  enqueuedAt: number;
  resolve: (slot: Slot) => void;
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
 * 1. Spacing (a bucket of capacity `burst`, default one): a slot every `(1000 + slack) / N`
 *    ms, so the calls are spread instead of bunched. With a burst, queued calls wait for the
 *    group's last slot and then leave together: the same rate, one wake-up per group.
 * 2. A sliding log of the last N sends: a call is released only if the N-th previous call
 *    left at least `1000 + slack` ms ago. This is the hard guarantee. It holds however late
 *    timers fire (a stalled event loop cannot catch up in a burst), and because it covers
 *    `1000 + slack` ms, any one-second window of the server, wherever its boundary falls,
 *    receives at most N calls as long as requests reach the server within `slack` of one
 *    another's relative order.
 *
 * The log holds when each call actually left (`sent()`), not when it was released: between
 * the two lie the token, the HTTP client's own steps and any event-loop stall, and a call
 * released before a stall but written after it would otherwise reach the server closer to
 * its successors than the limiter believes. Until a call reports its send, its release time
 * stands in (a lower bound).
 * When the answer comes back later than the shortest recent round trip (`answered()`), the
 * call may have reached the server that much later (a lagging server or network), and its
 * entry moves that much later too, up to 60 ms; time this process's own event loop was seen
 * stalled does not count. (Discounting the slack from that lateness let 429s through beside
 * a CPU hog: the slack is for what cannot be measured.)
 *
 * The slack adapts: a throttled answer (`throttled()`) doubles it, a release-to-send delay
 * longer than the slack (a loaded event loop, which delays the server's side on a shared host
 * just the same) raises it to that delay; both up to `maxSlackMs`, and the widening decays
 * back towards the floor with a half-life of `decayHalfLifeMs`.
 *
 * Waiters are served first in, first out; an aborted waiter leaves the queue.
 */
export class RateLimiter {
  readonly ratePerSecond: number;
  readonly minSlackMs: number;
  readonly maxSlackMs: number;
  readonly burst: number;
  private readonly halfLifeMs: number;
  private readonly now: () => number;
  private readonly unlimited: boolean;
  /** Ring buffer of the last N release (then send) times; slot s lives at s % N. */
  private readonly log: Float64Array;
  /** 1 once the call in that log entry has reported its send. */
  private readonly reported: Uint8Array;
  /** Releases so far; also the next slot number. */
  private released = 0;
  /** Earliest time of the next release by the spacing rule. */
  private nextAt = -Infinity;
  private queue: Waiter[] = [];
  private queueHead = 0;
  /** Waiters in the queue that have not aborted. */
  private live = 0;
  private timer: NodeJS.Timeout | undefined;
  private waitedTotalMs = 0;
  private unlimitedCount = 0;
  /** The widening above the floor at `boostAt`, ms (decays from there). */
  private boost = 0;
  private boostAt = 0;
  private throttledCount = 0;
  private maxDelay = 0;
  private maxHeld = 0;
  private rttMin = Infinity;
  private rttMinNext = Infinity;
  private rttSamples = 0;
  /** When the pending timer should fire; a later firing shows the event loop was stalled. */
  private timerDueAt = 0;
  /** The last stall of the event loop seen that way. */
  private stallFrom = 0;
  private stallTo = 0;

  constructor(opts: RateLimiterOptions = {}) {
    const rate = opts.ratePerSecond ?? 50;
    if (!(rate > 0)) throw new RangeError('ratePerSecond must be positive');
    if (Number.isFinite(rate) && rate > 1_000_000) throw new RangeError('ratePerSecond above 1,000,000: use Infinity for no limit');
    this.ratePerSecond = rate;
    this.unlimited = !Number.isFinite(rate);
    this.minSlackMs = Math.max(0, opts.slackMs ?? 20);
    this.maxSlackMs = Math.max(this.minSlackMs, opts.maxSlackMs ?? Math.max(30, this.minSlackMs));
    this.halfLifeMs = Math.max(1, opts.decayHalfLifeMs ?? 60_000);
    this.burst = Math.max(1, Math.floor(opts.burst ?? 1));
    this.now = opts.now ?? (() => performance.now());
    this.log = new Float64Array(this.unlimited ? 0 : Math.ceil(rate));
    this.reported = new Uint8Array(this.log.length);
  }

  /** The slack now in force, ms. */
  get slackMs(): number {
    return this.slackAt(this.now());
  }

  /** The span the sliding log covers now, ms (1000 + slack). */
  get windowMs(): number {
    return 1000 + this.slackMs;
  }

  /** The even spacing now in force, ms. */
  get spacingMs(): number {
    return this.unlimited ? 0 : this.spacingAt(this.now());
  }

  /**
   * Wait for a slot. Rejects with the signal's reason if it aborts first. `urgent` joins at the
   * head of the queue (the token fetch that every queued call is waiting for).
   */
  acquire(signal?: AbortSignal, urgent = false): Promise<Slot> {
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    if (this.unlimited) {
      this.unlimitedCount += 1;
      return Promise.resolve(-1);
    }
    const now = this.now();
    if (this.live === 0 && now >= this.earliest(now)) return Promise.resolve(this.release(now, now));
    return new Promise<Slot>((resolve, reject) => {
      const waiter: Waiter = { enqueuedAt: now, resolve, reject, cancelled: false, cleanup: noop };
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

  /**
   * The call of `slot` has just been written to the network: count it from now. A delay
   * since the release longer than the slack widens the slack.
   */
  sent(slot: Slot): void {
    if (slot < 0 || slot >= this.released) return;
    const now = this.now();
    const n = this.log.length;
    if (this.released - slot > n) {
      // Its entry has been reused already: the delay exceeded a whole log. Widen fully.
      this.widen(now, this.maxSlackMs);
      return;
    }
    const i = slot % n;
    if (this.reported[i] === 1) return;
    this.reported[i] = 1;
    const delay = now - this.log[i]!;
    if (delay <= 0) return;
    this.log[i] = now;
    if (delay > this.maxDelay) this.maxDelay = delay;
    // The log already counts this call from its send; the delay also hints that the server's
    // side of a loaded host lags, so the slack takes half the excess.
    if (delay > this.minSlackMs) this.widen(now, this.minSlackMs + (delay - this.minSlackMs) / 2);
  }

  /**
   * The answer to the call of `slot` has just arrived. The server saw the call at the latest
   * the shortest round trip before now; an answer later than that means the call was held up
   * on the way or at the server (a loaded host, network jitter), and it may have been counted
   * that much later than it was sent. The log then holds that later estimate, so the N-th call
   * after it waits for it: a server that stalled and counted a few calls late does not see
   * their successors, sent on time, inside the same second.
   */
  answered(slot: Slot): void {
    if (slot < 0 || slot >= this.released || this.released - slot > this.log.length) return;
    const i = slot % this.log.length;
    if (this.reported[i] !== 1) return;
    const now = this.now();
    const rtt = now - this.log[i]!;
    if (rtt < this.rttMin) this.rttMin = rtt;
    if (rtt < this.rttMinNext) this.rttMinNext = rtt;
    if (++this.rttSamples >= 512) {
      // A minimum over the last 512–1024 answers: it follows a slower route or server.
      this.rttMin = this.rttMinNext;
      this.rttMinNext = Infinity;
      this.rttSamples = 0;
    }
    // Time our own event loop was seen stalled since the send (a late timer of this limiter)
    // held up reading the answer, not the call: it does not count.
    const stalled = Math.max(0, Math.min(now, this.stallTo) - Math.max(this.log[i]!, this.stallFrom));
    const held = Math.min(rtt - this.rttMin - stalled, MAX_HELD_MS);
    if (held > 0) {
      this.log[i] = this.log[i]! + held;
      if (held > this.maxHeld) this.maxHeld = held;
    }
  }

  /** A call was throttled (HTTP 429, 99991400, 1000004, 1000005): double the slack. */
  throttled(): void {
    this.throttledCount += 1;
    const now = this.now();
    this.widen(now, Math.max(this.slackAt(now) * 2, this.minSlackMs + 10));
  }

  /** Total time callers spent waiting for slots, in ms (for metrics). */
  get waitedMs(): number {
    return this.waitedTotalMs;
  }

  stats(): RateLimiterStats {
    return {
      ratePerSecond: this.ratePerSecond,
      acquired: this.released + this.unlimitedCount,
      waitedMs: this.waitedTotalMs,
      queued: this.live,
      slackMs: this.slackMs,
      throttled: this.throttledCount,
      maxSendDelayMs: this.maxDelay,
      maxHeldMs: this.maxHeld,
    };
  }

  private slackAt(now: number): number {
    if (this.boost <= 0) return this.minSlackMs;
    const left = this.boost * Math.pow(0.5, (now - this.boostAt) / this.halfLifeMs);
    if (left < 0.01) {
      this.boost = 0;
      return this.minSlackMs;
    }
    return this.minSlackMs + left;
  }

  /** Raise the slack to `slack` (capped) if it is below it now. */
  private widen(now: number, slack: number): void {
    const target = Math.min(this.maxSlackMs, slack);
    if (target <= this.slackAt(now)) return;
    this.boost = target - this.minSlackMs;
    this.boostAt = now;
  }

  /** The schedule's spacing at `now`, ms: `(1000 + slack) / N`. */
  private spacingAt(now: number): number {
    return (1000 + this.slackAt(now)) / this.ratePerSecond;
  }

  /**
   * The earliest time both rules allow the next release, or the one `ahead` releases after
   * it were those before it released at once: the spacing rule lets `burst` slots go early,
   * the log rule waits for the N-th send before each.
   */
  private earliest(now: number, ahead = 0): number {
    const spacing = this.spacingAt(now);
    const bySpacing = this.nextAt + (ahead - (this.burst - 1)) * spacing;
    const n = this.log.length;
    const slot = this.released + ahead;
    if (slot < n) return bySpacing;
    return Math.max(bySpacing, this.log[slot % n]! + 1000 + this.slackAt(now));
  }

  /**
   * When the pump should next run: once the spacing rule lets the next `burst` queued calls
   * (or all of fewer) go together, and the log rule too unless it holds one of them back by
   * more than a spacing (that one then gets a wake-up of its own). Waiting longer for the
   * group would add each group's spread of sends to the period and slow the rate.
   */
  private groupAt(now: number): number {
    const k = Math.min(this.burst, this.live, this.log.length);
    const spacing = this.spacingAt(now);
    const bySpacing = Math.max(this.earliest(now), this.nextAt + (k - this.burst) * spacing);
    let at = bySpacing;
    for (let j = 1; j < k; j++) {
      const e = this.earliest(now, j);
      if (e <= bySpacing + spacing) at = Math.max(at, e);
    }
    return at;
  }

  /** Record a release at `now` for a call that was due at `due` (its slot, or its arrival if later). */
  private release(now: number, due: number): Slot {
    const slot = this.released;
    this.log[slot % this.log.length] = now;
    this.reported[slot % this.log.length] = 0;
    this.released += 1;
    // The next slot follows the schedule, not the moment the timer actually fired: timers fire
    // late, and charging that lateness (or an event-loop stall) to every call would erode the
    // rate. Catch-up is limited to two spacings, so after a stall at most three calls leave
    // together; after a longer stall the schedule restarts from now, and the log rule caps the
    // rest.
    // A call released early (inside the burst allowance) never moves the schedule earlier.
    const spacing = this.spacingAt(now);
    this.nextAt = Math.max(this.nextAt, due, now - 2 * spacing) + spacing;
    return slot;
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    // Run on a fresh tick even if a slot is free: a waiter just queued behind others must not
    // overtake them, and releasing from inside acquire() would re-enter the queue logic.
    this.timerDueAt = this.now() + 1;
    this.timer = setTimeout(() => this.pump(), 0);
  }

  private pump(): void {
    this.timer = undefined;
    const firedAt = this.now();
    if (firedAt - this.timerDueAt > 2) {
      this.stallFrom = this.timerDueAt;
      this.stallTo = firedAt;
    }
    for (;;) {
      while (this.queueHead < this.queue.length && this.queue[this.queueHead]!.cancelled) this.queueHead++;
      if (this.queueHead >= this.queue.length) {
        this.queue = [];
        this.queueHead = 0;
        return;
      }
      const now = this.now();
      const earliest = this.earliest(now);
      if (now < earliest) {
        // Wait for the whole group, not its first call: one wake-up releases it.
        const wait = Math.max(1, Math.ceil(this.groupAt(now) - now));
        this.timerDueAt = now + wait;
        this.timer = setTimeout(() => this.pump(), wait);
        return;
      }
      const waiter = this.queue[this.queueHead]!;
      this.queueHead++;
      if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.queueHead);
        this.queueHead = 0;
      }
      this.live -= 1;
      const slot = this.release(now, Math.max(earliest, waiter.enqueuedAt));
      this.waitedTotalMs += now - waiter.enqueuedAt;
      waiter.cleanup();
      waiter.resolve(slot);
    }
  }
}

function noop(): void {}

/** The most an answer's lateness moves its call's log entry, ms (beyond it: a slow reply, not a late arrival). */
const MAX_HELD_MS = 60;
