/**
 * `npm run bench:client`: the Feishu client against the emulator over real HTTP.
 * Prints achieved calls/s at the 50/s limit over 1,000 calls (target ≥ 48/s, 0 × 429),
 * calls/s with no limit, and latency percentiles.
 */
import { FeishuClient } from '../src/feishu/client.js';
import { startEmulator } from '../src/emulator/index.js';

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

async function measure(label: string, calls: number, limit: number): Promise<string> {
  const emu = await startEmulator({ strict: true, rateLimit: Number.isFinite(limit) ? limit : 1_000_000 });
  const client = new FeishuClient({ baseUrl: emu.url, appId: emu.appId, appSecret: emu.appSecret, rateLimit: limit, timeoutMs: 10_000 });
  await client.tokens.getToken();
  const latencies: number[] = [];
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < calls) {
      const i = next++;
      const t0 = performance.now();
      await client.createUserApproval('employee_id', {
        user_id: `u${i % 100}`,
        date: '20260302',
        leaves: [
          {
            uniq_id: 'ANNUAL',
            unit: 1,
            interval: 28800,
            start_time: '2026-03-02 09:00:00',
            end_time: '2026-03-02 18:00:00',
            i18n_names: { ch: '年假' },
            default_locale: 'ch',
            reason: 'bench',
            idempotent_id: `bench-${label}-${i}`,
          },
        ],
      } as never);
      latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  const seconds = (performance.now() - started) / 1000;
  const stats = emu.stats();
  await emu.close();
  latencies.sort((a, b) => a - b);
  return `| ${label} | ${calls} | ${(calls / seconds).toFixed(1)} | ${stats.rateLimited} | ${stats.busiestSecond} | ${percentile(latencies, 50).toFixed(1)} | ${percentile(latencies, 99).toFixed(1)} |`;
}

const rows = [await measure('limit 50/s', 1000, 50), await measure('no limit', 3000, Infinity)];
process.stdout.write(
  ['| run | calls | calls/s | 429s | busiest second | p50 ms | p99 ms |', '|---|---|---|---|---|---|---|', ...rows, '', 'targets: limit 50/s → ≥ 48 calls/s, 0 × 429, busiest second ≤ 50', ''].join('\n'),
);
