import net from 'node:net';
import { Metrics, METRICS_LISTENER_LIMITS, startMetricsServer } from '../src/metrics/metrics.js';

/*
 * The metrics listener shares file descriptors with the worker's own connections: it must
 * not hold half-sent requests for long, nor accept connections without bound.
 */

type Server = Awaited<ReturnType<typeof startMetricsServer>>;

function open(port: number): Promise<net.Socket & { closedAt?: number }> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }) as net.Socket & { closedAt?: number };
    s.on('close', () => (s.closedAt = Date.now()));
    s.on('error', () => undefined);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

async function waitFor(what: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (what()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return what();
}

describe('metrics listener limits', () => {
  let server: Server;
  let port: number;
  // The server's side of each connection, by the client's local port: when the listener let
  // go of it (its descriptor is free then, whatever the client end has noticed).
  const released = new Map<number, number>();
  // Dropped: the client saw the close, or the server's end of it closed (whichever is seen first).
  const gone = (s: net.Socket & { closedAt?: number }) => s.closedAt ?? released.get(s.localPort!);
  beforeAll(async () => {
    server = await startMetricsServer({ host: '127.0.0.1', port: 0, metrics: new Metrics(), health: () => ({ ok: true }) });
    port = Number(new URL(server.url).port);
    server.on('connection', (socket: net.Socket) => {
      const peer = socket.remotePort!;
      socket.on('close', () => released.set(peer, Date.now()));
    });
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('drops a connection that sends half a request, after the header timeout', async () => {
    const s = await open(port);
    const started = Date.now();
    let answer = '';
    s.on('data', (d: Buffer) => (answer += d.toString()));
    s.write('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    const limit = METRICS_LISTENER_LIMITS.headersTimeoutMs + METRICS_LISTENER_LIMITS.checkIntervalMs + 3_000;
    expect(await waitFor(() => gone(s) !== undefined, limit)).toBe(true);
    const seconds = (gone(s)! - started) / 1000;
    // Not closed at once for some other reason: it was the header timeout.
    expect(seconds).toBeGreaterThanOrEqual(METRICS_LISTENER_LIMITS.headersTimeoutMs / 1000 - 0.5);
    expect(answer).toMatch(/^HTTP\/1\.1 408|^$/);
    s.destroy();
  }, 30_000);

  it('drops a connection that never sends a byte', async () => {
    const s = await open(port);
    const started = Date.now();
    const limit = METRICS_LISTENER_LIMITS.requestTimeoutMs + METRICS_LISTENER_LIMITS.checkIntervalMs + 3_000;
    expect(await waitFor(() => gone(s) !== undefined, limit)).toBe(true);
    expect((gone(s)! - started) / 1000).toBeLessThanOrEqual(limit / 1000);
    s.destroy();
  }, 30_000);

  it('caps concurrent connections; the endpoint answers again once the flood is gone', async () => {
    const flood = await Promise.all(Array.from({ length: 100 }, () => open(port)));
    const cap = METRICS_LISTENER_LIMITS.maxConnections;
    // Connections past the cap are closed as they arrive.
    expect(await waitFor(() => flood.filter((s) => s.closedAt !== undefined).length >= 100 - cap, 5_000)).toBe(true);
    const open_ = await new Promise<number>((r) => server.getConnections((_e, n) => r(n)));
    expect(open_).toBeLessThanOrEqual(cap);
    for (const s of flood) s.destroy();
    expect(await waitFor(() => flood.every((s) => s.closedAt !== undefined), 5_000)).toBe(true);
    const res = await fetch(`${server.url}/healthz`);
    expect(res.status).toBe(200);
  }, 30_000);
});
