/**
 * `npm run bench:client`: the Feishu client alone, over real HTTP.
 *
 * - Pacing: 1,400 creates at the 50/s limit against an independent server in another process
 *   that counts arrivals in a sliding one-second window (bench/arrivals.ts), on an idle machine
 *   and with a CPU hog (a busy child process) on the other core. Target ≥ 48 calls/s, 0 × 429.
 * - CPU per call at the limit (process.cpuUsage of this process only: the server is another
 *   process), in ms and as % of one core at 50 calls/s. Target < 5 %.
 * - Where that CPU goes (`baseline`): the same creates at 50/s on a fixed schedule, sent by got
 *   alone (FeishuHttp: one got attempt, no limiter, token or retries) and by node:http alone,
 *   measured after a warm-up of 200 calls: the client's own share is the difference between
 *   its figure and got's.
 * - The in-process emulator at the limit and with no limit, with latency percentiles.
 *
 * `--only pacing,baseline,emulator`, `--calls N`.
 */
import http from 'node:http';
import { Command } from 'commander';
import { FeishuClient } from '../src/feishu/client.js';
import { FeishuHttp } from '../src/feishu/http.js';
import { startEmulator } from '../src/emulator/index.js';
import { sampleLeave } from '../test/helpers/approvals.js';
import { startArrivalServer, startCpuHog } from './arrivals.js';

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

function approval(label: string, i: number) {
  return sampleLeave(`u${i % 100}`, `bench-${label}-${i}`, 'bench');
}

async function drive(client: FeishuClient, label: string, calls: number, concurrency: number): Promise<{ seconds: number; latencies: number[]; cpu: NodeJS.CpuUsage }> {
  const latencies: number[] = [];
  let next = 0;
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const worker = async () => {
    while (next < calls) {
      const i = next++;
      const t0 = performance.now();
      await client.createUserApproval('employee_id', approval(label, i));
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  return { seconds, latencies: latencies.sort((a, b) => a - b), cpu: process.cpuUsage(cpu0) };
}

const cpuMs = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1000;

async function pacing(label: string, calls: number, hog: boolean): Promise<string> {
  const server = await startArrivalServer({ limit: 50, latencyMs: 30 });
  const cpuHog = hog ? await startCpuHog() : undefined;
  try {
    const client = new FeishuClient({ baseUrl: server.url, appId: 'cli_bench', appSecret: 'bench-secret', rateLimit: 50, timeoutMs: 10_000 });
    await client.tokens.getToken();
    const r = await drive(client, label, calls, 8);
    const s = await server.stats();
    const perCall = cpuMs(r.cpu) / calls;
    return `| ${label} | ${calls} | ${(calls / r.seconds).toFixed(1)} | ${s.rateLimited} | ${s.busiestSecond} | ${perCall.toFixed(3)} ms (${((perCall * 50) / 10).toFixed(2)} % of a core at 50/s) | ${percentile(r.latencies, 50).toFixed(1)} | ${percentile(r.latencies, 99).toFixed(1)} |`;
  } finally {
    await cpuHog?.close();
    await server.close();
  }
}

/** One POST a fixed 20 ms apart (50/s), no limiter: what a bare HTTP stack costs per call. */
async function fixedRate(label: string, calls: number, post: (i: number) => Promise<unknown>): Promise<string> {
  const warmUp = 200;
  let cpu0 = process.cpuUsage();
  const inFlight: Array<Promise<unknown>> = [];
  const t0 = performance.now();
  for (let i = 0; i < warmUp + calls; i++) {
    if (i === warmUp) cpu0 = process.cpuUsage();
    const wait = t0 + i * 20 - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    inFlight.push(post(i));
  }
  await Promise.all(inFlight);
  const perCall = cpuMs(process.cpuUsage(cpu0)) / calls;
  return `| ${label} | ${calls} | 50.0 (fixed schedule) | — | — | ${perCall.toFixed(3)} ms (${((perCall * 50) / 10).toFixed(2)} % of a core at 50/s) | — | — |`;
}

async function baseline(calls: number): Promise<string[]> {
  const server = await startArrivalServer({ limit: 1_000_000, latencyMs: 30 });
  try {
    const path = 'open-apis/attendance/v1/user_approvals';
    const bodyOf = (i: number) => JSON.stringify({ user_approval: approval('base', i) });
    const feishuHttp = new FeishuHttp({ baseUrl: server.url, timeoutMs: 10_000 });
    // FeishuHttp is one got attempt with the client's options, before the limiter, token and retries.
    const viaGot = await fixedRate('got 14 alone (FeishuHttp: one attempt, no limiter)', calls, (i) =>
      feishuHttp.send({ endpoint: 'create', path, searchParams: { employee_type: 'employee_id' }, body: { user_approval: approval('base', i) }, token: 't', isWrite: true }),
    );
    const agent = new http.Agent({ keepAlive: true });
    const { hostname, port } = new URL(server.url);
    const viaHttp = await fixedRate('node:http alone (keep-alive agent)', calls, (i) => {
      const body = bodyOf(i);
      return new Promise((resolve, reject) => {
        const req = http.request(
          { host: hostname, port, path: `/${path}?employee_type=employee_id`, method: 'POST', agent, headers: { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), authorization: 'Bearer t' } },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (text += c));
            res.on('end', () => resolve(JSON.parse(text) as unknown));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    });
    agent.destroy();
    return [viaGot, viaHttp];
  } finally {
    await server.close();
  }
}

async function emulator(label: string, calls: number, limit: number): Promise<string> {
  const emu = await startEmulator({ strict: true, rateLimit: Number.isFinite(limit) ? limit : 1_000_000 });
  const client = new FeishuClient({ baseUrl: emu.url, appId: emu.appId, appSecret: emu.appSecret, rateLimit: limit, timeoutMs: 10_000 });
  await client.tokens.getToken();
  const r = await drive(client, label, calls, 32);
  const stats = emu.stats();
  await emu.close();
  return `| ${label} | ${calls} | ${(calls / r.seconds).toFixed(1)} | ${stats.rateLimited} | ${stats.busiestSecond} | ${(cpuMs(r.cpu) / calls).toFixed(3)} ms (client and emulator) | ${percentile(r.latencies, 50).toFixed(1)} | ${percentile(r.latencies, 99).toFixed(1)} |`;
}

const o = new Command()
  .option('--only <sections>', 'pacing,baseline,emulator', 'pacing,baseline,emulator')
  .option('--calls <n>', 'calls per pacing run', '1400')
  .parse()
  .opts<{ only: string; calls: string }>();
const only = new Set(o.only.split(','));
const calls = Number(o.calls);
const rows: string[] = [];
if (only.has('pacing')) {
  rows.push(await pacing('50/s, sliding-second server, idle', calls, false));
  rows.push(await pacing('50/s, sliding-second server, CPU hog', calls, true));
}
if (only.has('baseline')) rows.push(...(await baseline(calls)));
if (only.has('emulator')) {
  rows.push(await emulator('50/s, emulator', 1000, 50));
  rows.push(await emulator('no limit, emulator', 3000, Infinity));
}
process.stdout.write(
  [
    '| run | calls | calls/s | 429s | busiest second | CPU per call | p50 ms | p99 ms |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    'targets at 50/s: ≥ 48 calls/s, 0 × 429, busiest second ≤ 50, CPU < 5 % of a core (< 1 ms per call)',
    '',
  ].join('\n'),
);
