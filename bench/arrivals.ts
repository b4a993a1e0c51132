/**
 * An independent judge of pacing: a minimal Feishu stand-in in a child process of its own that
 * counts request *arrivals* in a sliding one-second window (stricter than Feishu's fixed
 * windows: any 1,000 ms span, wherever it starts) and answers HTTP 429 + 99991400 to the
 * arrival that would make it more than `limit`. Being another process, its clock and event
 * loop are not the client's: what it counts is what a remote server would see.
 *
 * Also here: a CPU hog (a busy child process) to load the machine's other core.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';

export interface ArrivalStats {
  /** Attendance calls that arrived (429s included). */
  arrivals: number;
  /** Calls answered 429. */
  rateLimited: number;
  /** Most arrivals seen in any sliding 1,000 ms span (before answering). */
  busiestSecond: number;
  tokenCalls: number;
}

export interface ArrivalServer {
  url: string;
  stats(): Promise<ArrivalStats>;
  /** Zero the counters (between phases of one test). */
  reset(): Promise<void>;
  close(): Promise<void>;
}

const SERVER_SCRIPT = String.raw`
const http = require('node:http');
const { performance } = require('node:perf_hooks');
const limit = Number(process.argv[1]);
const latencyMs = Number(process.argv[2]);
let log = new Float64Array(1 << 16), head = 0, tail = 0;
let stats = { arrivals: 0, rateLimited: 0, busiestSecond: 0, tokenCalls: 0 };
let seq = 0;
function answer(res, status, body, headers) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...(headers || {}) });
  res.end(text);
}
const server = http.createServer((req, res) => {
  // Counted on the request line, before the body: the moment the call reached the server.
  const now = performance.now();
  if (req.method === 'GET' && req.url === '/stats') return answer(res, 200, stats);
  if (req.method === 'POST' && req.url === '/reset') { stats = { arrivals: 0, rateLimited: 0, busiestSecond: 0, tokenCalls: 0 }; head = tail = 0; return answer(res, 200, {}); }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.url.startsWith('/open-apis/auth/')) {
      stats.tokenCalls++;
      return answer(res, 200, { code: 0, msg: 'ok', tenant_access_token: 't-arrivals', expire: 7200 });
    }
    stats.arrivals++;
    while (tail > head && log[head & 0xffff] <= now - 1000) head++;
    const inWindow = tail - head + 1;
    if (inWindow > stats.busiestSecond) stats.busiestSecond = inWindow;
    const reply = () => {
      if (inWindow > limit) {
        stats.rateLimited++;
        return answer(res, 429, { code: 99991400, msg: 'request trigger frequency limit' }, { 'x-ogw-ratelimit-limit': String(limit), 'x-ogw-ratelimit-reset': '1' });
      }
      let item = {};
      try { const b = JSON.parse(Buffer.concat(chunks).toString('utf8')); const ua = b.user_approval; const kind = Object.keys(ua).find((k) => Array.isArray(ua[k])); item = { ...ua[kind][0] }; item.approval_id = String(++seq); ua[kind] = [item]; return answer(res, 200, { code: 0, msg: 'success', data: { user_approval: ua } }); }
      catch { return answer(res, 400, { code: 1220001, msg: 'param invalid' }); }
    };
    if (inWindow <= limit) { log[tail & 0xffff] = now; tail++; }
    if (latencyMs > 0) setTimeout(reply, latencyMs); else reply();
  });
});
server.keepAliveTimeout = 30000;
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n'));
process.on('disconnect', () => process.exit(0));
`;

/** Start the counting server; `latencyMs` delays every answer (not the counting). */
export async function startArrivalServer(opts: { limit?: number; latencyMs?: number } = {}): Promise<ArrivalServer> {
  const child = spawn(process.execPath, ['-e', SERVER_SCRIPT, String(opts.limit ?? 50), String(opts.latencyMs ?? 0)], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve((JSON.parse(buf.slice(0, nl)) as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`arrival server exited (${code})`)));
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    stats: async () => (await (await fetch(`${url}/stats`)).json()) as ArrivalStats,
    reset: async () => {
      await fetch(`${url}/reset`, { method: 'POST' });
    },
    close: () => stop(child),
  };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

/** A child process that keeps one core busy until closed. */
export async function startCpuHog(): Promise<{ close(): Promise<void> }> {
  const child = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 50));
  return { close: () => stop(child) };
}
