import { performance } from 'node:perf_hooks';
import { startArrivalServer, type ArrivalServer } from '../bench/arrivals.js';
import { FeishuClient } from '../src/feishu/client.js';
import { RateLimiter } from '../src/feishu/limiter.js';
import { sampleLeave } from './helpers/approvals.js';

/** Largest number of timestamps inside any half-open window [t, t + widthMs). */
function busiestWindow(times: number[], widthMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  let lo = 0;
  for (let hi = 0; hi < sorted.length; hi++) {
    while (sorted[hi]! - sorted[lo]! >= widthMs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

/** Acquire `n` slots at once; the times they were granted, in `into` as they come. */
async function releaseTimes(limiter: RateLimiter, n: number, into: number[] = []): Promise<number[]> {
  await Promise.all(Array.from({ length: n }, () => limiter.acquire().then(() => void into.push(performance.now()))));
  return into;
}

function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // hold the event loop, as a CPU-heavy mapping batch would
  }
}

describe('RateLimiter', () => {
  it('spreads calls evenly and never lets N+1 into any one-second window', async () => {
    const limiter = new RateLimiter({ ratePerSecond: 20, slackMs: 20 });
    const started = performance.now();
    const times = await releaseTimes(limiter, 50);
    // Releases are N per 1000 + slack ms; the times seen here come a microtask later, with up
    // to `slack` of jitter on a loaded host, so the server's one-second windows are checked.
    expect(busiestWindow(times, 1000)).toBeLessThanOrEqual(20);
    // Evenly spaced (capacity one): the typical gap is one spacing (51 ms). A timer that fires
    // late shortens the gap after it, so the median is checked, not the minimum.
    const sorted = [...times].sort((a, b) => a - b);
    const gaps = sorted.slice(1).map((t, i) => t - sorted[i]!).sort((a, b) => a - b);
    expect(gaps[Math.floor(gaps.length / 2)]!).toBeGreaterThan(45);
    // …and not much slower than the rate: 49 gaps of 51 ms (generous bound for a loaded CI host).
    expect(performance.now() - started).toBeLessThan(49 * 51 + 2_000);
    expect(limiter.stats().acquired).toBe(50);
    expect(limiter.waitedMs).toBeGreaterThan(0);
  });

  it('does not burst to catch up after the event loop stalls', async () => {
    const limiter = new RateLimiter({ ratePerSecond: 25, slackMs: 20 });
    const times: number[] = [];
    const all = releaseTimes(limiter, 60, times);
    // A 300 ms stall after the first few releases: a schedule-only limiter would then release
    // ~7 calls at once and later fit more than 25 into one second.
    await new Promise((r) => setTimeout(r, 150));
    busyWait(300);
    await all;
    expect(busiestWindow(times, 1000)).toBeLessThanOrEqual(25);
  });

  it('with a burst, releases queued calls in groups at the same rate, never N+1 in any one-second window', async () => {
    const limiter = new RateLimiter({ ratePerSecond: 20, slackMs: 20, burst: 5 });
    const started = performance.now();
    const times = await releaseTimes(limiter, 60);
    expect(busiestWindow(times, 1000)).toBeLessThanOrEqual(20);
    // Groups: releases less than 5 ms apart came from one wake-up.
    const sorted = [...times].sort((a, b) => a - b);
    const groups: number[] = [1];
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i]! - sorted[i - 1]! < 5) groups[groups.length - 1]! += 1;
      else groups.push(1);
    }
    expect(groups.length).toBeLessThanOrEqual(60 / 5 + 3);
    expect(Math.max(...groups)).toBeLessThanOrEqual(20);
    // The rate is the same as evenly spaced: 60 calls at 20 per 1.02 s, the first group at once.
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThan(((60 - 20) / 20) * 1000);
    expect(elapsed).toBeLessThan(((60 - 5) / 20) * 1020 + 2_000);
  });

  it('with a burst, does not let a stalled event loop push N+1 calls into a window', async () => {
    const limiter = new RateLimiter({ ratePerSecond: 25, slackMs: 20, burst: 5 });
    const times: number[] = [];
    const all = releaseTimes(limiter, 80, times);
    await new Promise((r) => setTimeout(r, 150));
    busyWait(300);
    await new Promise((r) => setTimeout(r, 700));
    busyWait(200);
    await all;
    expect(busiestWindow(times, 1000)).toBeLessThanOrEqual(25);
  });

  it('serves waiters first in, first out, and urgent ones first', async () => {
    const limiter = new RateLimiter({ ratePerSecond: 50 });
    const order: string[] = [];
    const ps = ['a', 'b', 'c'].map((n) => limiter.acquire().then(() => order.push(n)));
    const urgent = limiter.acquire(undefined, true).then(() => order.push('urgent'));
    await Promise.all([...ps, urgent]);
    // 'a' took the free slot synchronously; the urgent waiter jumped the queue.
    expect(order).toEqual(['a', 'urgent', 'b', 'c']);
  });

  it('removes an aborted waiter from the queue and rejects with the reason', async () => {
    const limiter = new RateLimiter({ ratePerSecond: 5 });
    await limiter.acquire(); // uses the free slot; the next one is 204 ms away
    const ac = new AbortController();
    const aborted = limiter.acquire(ac.signal);
    const next = limiter.acquire();
    ac.abort(new Error('shutting down'));
    await expect(aborted).rejects.toThrow('shutting down');
    const t0 = performance.now();
    await next;
    // The aborted waiter did not consume the slot: `next` got the very next one.
    expect(performance.now() - t0).toBeLessThan(260);
    expect(limiter.stats()).toMatchObject({ acquired: 2, queued: 0 });
    await expect(limiter.acquire(AbortSignal.abort(new Error('already')))).rejects.toThrow('already');
  });

  it('with an infinite rate never waits', async () => {
    const limiter = new RateLimiter({ ratePerSecond: Infinity });
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 1000 }, () => limiter.acquire()));
    expect(performance.now() - t0).toBeLessThan(100);
    expect(limiter.stats().acquired).toBe(1000);
  });
});

describe('RateLimiter: adaptive slack', () => {
  it('widens the slack on a throttled answer, then decays back slowly to the floor', () => {
    let t = 0;
    const limiter = new RateLimiter({ ratePerSecond: 50, slackMs: 20, maxSlackMs: 30, decayHalfLifeMs: 10_000, now: () => t });
    expect(limiter.slackMs).toBe(20);
    expect(limiter.spacingMs).toBeCloseTo(1020 / 50, 6);
    limiter.throttled();
    // Doubled, capped at the ceiling: at 50/s still 48.5 calls/s.
    expect(limiter.slackMs).toBe(30);
    expect(limiter.spacingMs).toBeCloseTo(1030 / 50, 6);
    expect(1000 / limiter.spacingMs).toBeGreaterThanOrEqual(48);
    t = 10_000; // one half-life
    expect(limiter.slackMs).toBeCloseTo(25, 6);
    t = 20_000;
    expect(limiter.slackMs).toBeCloseTo(22.5, 6);
    t = 200_000;
    expect(limiter.slackMs).toBe(20);
    expect(limiter.stats()).toMatchObject({ throttled: 1, slackMs: 20 });
  });

  it('widens the slack to a measured release-to-send delay, and counts the call from its send', async () => {
    let t = 0;
    const limiter = new RateLimiter({ ratePerSecond: 2, slackMs: 10, maxSlackMs: 40, decayHalfLifeMs: 10_000, now: () => t });
    const a = await limiter.acquire(); // released at 0
    t = 5;
    limiter.sent(a); // 5 ms: within the slack, nothing changes
    expect(limiter.slackMs).toBe(10);
    t = 600;
    const b = await limiter.acquire();
    t = 630;
    limiter.sent(b); // 30 ms after its release: the slack takes half the excess over the floor
    expect(limiter.slackMs).toBe(20);
    expect(limiter.stats().maxSendDelayMs).toBe(30);
    t = 700;
    limiter.sent(b); // a second report of the same slot changes nothing
    expect(limiter.slackMs).toBeCloseTo(20, 0);
    // Far beyond the ceiling: capped.
    t = 1_700;
    const c = await limiter.acquire();
    t = 1_800;
    limiter.sent(c);
    expect(limiter.slackMs).toBe(40);
  });

  it('counts a call whose answer came late (held on the way) that much later', async () => {
    let t = 0;
    const limiter = new RateLimiter({ ratePerSecond: 2, slackMs: 0, maxSlackMs: 0, now: () => t });
    const a = await limiter.acquire();
    limiter.sent(a);
    t = 20;
    limiter.answered(a); // the shortest round trip so far: 20 ms
    t = 500;
    const b = await limiter.acquire();
    limiter.sent(b);
    t = 570;
    limiter.answered(b); // 70 ms: held 50 ms beyond the shortest round trip
    expect(limiter.stats().maxHeldMs).toBe(50);
    // The log is full (2 slots); the next call waits for slot a (sent at 0) + 1000, the one after
    // for slot b counted at 500 + 50 + 1000.
    t = 1000;
    const c = await limiter.acquire();
    expect(c).toBe(2);
    t = 1_549;
    let released = false;
    const d = limiter.acquire().then((slot) => {
      released = true;
      return slot;
    });
    await new Promise((r) => setTimeout(r, 30));
    expect(released).toBe(false);
    t = 1_551;
    expect(await d).toBe(3);
  });

  it('lets the next call of a full log wait for the N-th previous send, not its release', async () => {
    const limiter = new RateLimiter({ ratePerSecond: 2, slackMs: 0, maxSlackMs: 0 });
    const t0 = performance.now();
    const first = await limiter.acquire();
    await limiter.acquire(); // the second slot, 500 ms later
    // The first call only left 300 ms after its release (an event-loop stall, a token fetch).
    const sentAt = t0 + 300;
    while (performance.now() < sentAt) await new Promise((r) => setTimeout(r, 5));
    limiter.sent(first);
    const sent = performance.now();
    await limiter.acquire();
    // By releases the third slot would be free at t0 + 1000; by the first send only at sent + 1000.
    expect(performance.now() - sent).toBeGreaterThanOrEqual(995);
  });
});

describe('RateLimiter: against a server that counts arrivals in a sliding second', () => {
  let server: ArrivalServer;
  beforeAll(async () => {
    server = await startArrivalServer({ limit: 50, latencyMs: 20 });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('draws no 429 at 50/s while the event loop stalls at intervals, and every call gets through', async () => {
    await server.reset();
    const client = new FeishuClient({ baseUrl: server.url, appId: 'cli_pace', appSecret: 'pace-secret', rateLimit: 50, timeoutMs: 10_000 });
    await client.tokens.getToken();
    // Jitter: the event loop is blocked for 25–45 ms every ~400 ms (CPU-heavy batches in the
    // same process), so calls released before a stall are written after it.
    let stalls = 0;
    const hog = setInterval(() => {
      stalls += 1;
      busyWait(25 + (stalls % 5) * 5);
    }, 390);
    const calls = 600;
    const done: number[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < calls) {
        const i = next++;
        await client.createUserApproval('employee_id', sampleLeave(`u${i % 40}`, `pace-${i}`, 'pace'));
        done.push(performance.now());
      }
    };
    try {
      await Promise.all(Array.from({ length: 8 }, worker));
    } finally {
      clearInterval(hog);
    }
    const s = await server.stats();
    expect(stalls).toBeGreaterThan(20);
    expect(s.rateLimited).toBe(0);
    expect(s.busiestSecond).toBeLessThanOrEqual(50);
    expect(s.arrivals).toBe(calls);
    expect(client.stats().rateLimited).toBe(0);
    // The calls per second it keeps is a speed figure, not a test: `npm run bench:client`
    // prints it (idle and beside a CPU hog in another process).
    expect(done).toHaveLength(calls);
  });

  it('widens the spacing after a 429 from the server, then recovers', async () => {
    // A server with a stricter limit than the client's: the client's first second trips it.
    const strict = await startArrivalServer({ limit: 30 });
    try {
      const limiter = new RateLimiter({ ratePerSecond: 50, decayHalfLifeMs: 1_000 });
      const client = new FeishuClient({ baseUrl: strict.url, appId: 'cli_pace', appSecret: 'pace-secret', limiter, timeoutMs: 10_000 });
      await client.tokens.getToken();
      const before = limiter.spacingMs;
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          client.createUserApproval('employee_id', sampleLeave('u1', `strict-${i}`, 'pace')),
        ),
      );
      // Every call got through (the 429s were retried after the reset) …
      expect(results).toHaveLength(40);
      expect((await strict.stats()).rateLimited).toBeGreaterThan(0);
      expect(limiter.stats().throttled).toBeGreaterThan(0);
      // … and the spacing is wider than before, then decays back (half-life 1 s here).
      expect(limiter.spacingMs).toBeGreaterThan(before);
      await new Promise((r) => setTimeout(r, 6_000));
      expect(limiter.spacingMs).toBeLessThan(before + 0.05);
    } finally {
      await strict.close();
    }
  });
});
