/**
 * `npm run test:model`: the randomized model test of the whole sync. Each history is a random
 * sequence of source changes, operator actions (through the CLI) and Feishu conditions (on the
 * emulator); then every fault is switched off, the operator drains (retry failed and dead,
 * `once`, then `once --rescan`) and the emulator's ledger is judged by content against the
 * source: missing, duplicated, not revoked, unexpected must all be 0. A failing history is
 * shrunk to a short one and printed as steps, with the command that replays it.
 *
 *   node dist/model/model.js [--histories N] [--seed S] [--dialect sqlite|pg|mysql]
 *        [--steps all,-nullKey] [--min-steps N] [--max-steps N] [--concurrency N] [--page-size N]
 *        [--cli] [--shrink N] [--replay JSON] [--verbose] [--keep]
 *
 * The last line is `model: N histories, M steps, K faults, V violations` (V: histories that
 * broke an invariant or hung; K: Feishu conditions switched on, days passing and SIGKILLs); exit 1
 * when V > 0.
 */
import { realNow } from './clock.js';
import { Command, InvalidArgumentError } from 'commander';
import { seededRandom } from '../src/random.js';
import { ModelRunner, violations, type HistoryResult } from './history.js';
import type { ContentVerdict } from './source.js';
import { formatStep, generateHistory, parseStepTypes, STEP_TYPES, type Step } from './steps.js';

function int(min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`an integer ≥ ${min} is required`);
    return n;
  };
}

const program = new Command('model')
  .description('randomized histories of source changes, operator actions and Feishu faults; each judged by content against the source')
  .option('--histories <n>', 'histories to run', int(1), 100)
  .option('--seed <n>', 'seed of the histories (history i uses a seed derived from it and i)', int(0), 1)
  .option('--dialect <d>', 'sqlite, pg or mysql (source and state in one database)', 'sqlite')
  .option('--steps <spec>', `step types: all, a list, or all,-a,-b (known: ${STEP_TYPES.join(', ')})`, 'all')
  .option('--min-steps <n>', 'fewest random steps after the first inserts', int(0), 6)
  .option('--max-steps <n>', 'most random steps after the first inserts', int(1), 24)
  .option('--concurrency <n>', 'feishu.concurrency of the worker (1: the send order is reproducible, but outages are slow)', int(1), 4)
  .option('--page-size <n>', 'sync.page_size (small: many pages, many page ends)', int(1), 3)
  .option('--cli', 'run every operator action as a child process of the built CLI (slower)')
  .option('--command-timeout <s>', 'seconds after which a command has hung (a violation)', int(1), 30)
  .option('--shrink <n>', 'failing histories to shrink', int(0), 1)
  .option('--shrink-runs <n>', 'history runs the shrinking of one history may take', int(1), 150)
  .option('--replay <json>', 'run these steps (a JSON array as printed for a failing history) instead of random ones')
  .option('--verbose', 'a line per history, and the transcript of failing ones')
  .option('--keep', 'keep the database (and print its URL)')
  .parse();

const opts = program.opts<{
  histories: number;
  seed: number;
  dialect: string;
  steps: string;
  minSteps: number;
  maxSteps: number;
  concurrency: number;
  pageSize: number;
  cli?: boolean;
  commandTimeout: number;
  shrink: number;
  shrinkRuns: number;
  replay?: string;
  verbose?: boolean;
  keep?: boolean;
}>();
if (!['sqlite', 'pg', 'mysql'].includes(opts.dialect)) program.error('--dialect: sqlite, pg or mysql');
if (opts.maxSteps < opts.minSteps) program.error('--max-steps: must not be below --min-steps');
let enabled;
try {
  enabled = parseStepTypes(opts.steps);
} catch (err) {
  program.error((err as Error).message);
}
let replay: Step[] | null = null;
if (opts.replay !== undefined) {
  try {
    replay = JSON.parse(opts.replay) as Step[];
    if (!Array.isArray(replay)) throw new Error('not an array');
  } catch (err) {
    program.error(`--replay: a JSON array of steps is required (${(err as Error).message})`);
  }
}

const out = (line: string) => process.stdout.write(line + '\n');

function describe(v: ContentVerdict): string {
  return `missing ${v.missing}, duplicated ${v.duplicated}, not revoked ${v.notRevoked}, unexpected ${v.unexpected}`;
}

function report(r: HistoryResult, label: string): void {
  if (r.hung) out(`${label}: hung: ${r.hung}`);
  else out(`${label}: before the rescan: ${describe(r.before)}; after it: ${describe(r.after)}; stuck ${r.stuck}`);
  for (const c of r.countsDrift) out(`    status counts: ${c}`);
  for (const e of r.before.examples) out(`    before the rescan: ${e}`);
  for (const e of r.after.examples) out(`    after the rescan: ${e}`);
}

/**
 * Shrink a failing history: drop chunks of steps (halves, quarters, … single steps) while it
 * still fails, within a budget of runs. Timing (a SIGKILL) can make a run pass that failed
 * before; then the chunk simply stays.
 */
async function shrink(runner: ModelRunner, steps: readonly Step[], seed: number, budget: number): Promise<{ steps: Step[]; result: HistoryResult; runs: number }> {
  let best = [...steps];
  let result: HistoryResult | null = null;
  let runs = 0;
  let chunk = Math.max(1, Math.floor(best.length / 2));
  while (chunk >= 1 && runs < budget) {
    let removed = false;
    for (let i = 0; i + chunk <= best.length && runs < budget; ) {
      const candidate = [...best.slice(0, i), ...best.slice(i + chunk)];
      runs++;
      const r = await runner.run(candidate, seed);
      if (violations(r) > 0) {
        best = candidate;
        result = r;
        removed = true;
      } else i += chunk;
    }
    if (!removed) chunk = Math.floor(chunk / 2);
    else chunk = Math.min(chunk, Math.max(1, Math.floor(best.length / 2)));
  }
  result ??= await runner.run(best, seed);
  return { steps: best, result, runs };
}

const runnerOptions = { dialect: opts.dialect as 'sqlite' | 'pg' | 'mysql', cli: opts.cli === true, concurrency: opts.concurrency, pageSize: opts.pageSize, commandTimeoutMs: opts.commandTimeout * 1000 };
const runner = await ModelRunner.open(runnerOptions);
const started = realNow();
let histories = 0;
let steps = 0;
let faults = 0;
let kills = 0;
let failing = 0;
let shrunk = 0;
const totals = { missing: 0, duplicated: 0, notRevoked: 0, unexpected: 0, stuck: 0, countsDrift: 0 };
let failed = false;
try {
  const count = replay ? 1 : opts.histories;
  for (let i = 0; i < count; i++) {
    // A replay uses the seed as printed (the emulator's fault draws); history i derives its own.
    const seed = replay ? opts.seed : (Math.imul(opts.seed + 1, 0x9e3779b1) + i * 7919) >>> 0;
    const history = replay ?? generateHistory(seededRandom(seed), enabled!, { minSteps: opts.minSteps, maxSteps: opts.maxSteps });
    const r = await runner.run(history, seed);
    histories++;
    steps += history.length;
    faults += r.faults;
    kills += r.kills;
    for (const v of [r.before, r.after]) {
      totals.missing += v.missing;
      totals.duplicated += v.duplicated;
      totals.notRevoked += v.notRevoked;
      totals.unexpected += v.unexpected;
    }
    totals.stuck += r.stuck;
    totals.countsDrift += r.countsDrift.length;
    const bad = violations(r) > 0;
    if (opts.verbose) out(`history ${i} (seed ${seed}): ${history.length} steps, ${r.ms} ms, ${bad ? 'VIOLATION' : 'ok'}`);
    if (opts.verbose && !bad && r.ms > 5_000) for (const line of r.transcript) out(`    ${line}`);
    if (!bad) continue;
    failing++;
    report(r, `history ${i} (seed ${seed}, ${history.length} steps)`);
    if (opts.verbose) for (const line of r.transcript) out(`    ${line}`);
    if (shrunk < opts.shrink) {
      shrunk++;
      const s = await shrink(runner, history, seed, opts.shrinkRuns);
      out(`  shrunk to ${s.steps.length} steps (${s.runs} runs):`);
      for (const st of s.steps) out(`    ${formatStep(st)}`);
      report(s.result, '  the shrunk history');
      out(`  replay: npm run test:model -- --dialect ${opts.dialect} --concurrency ${opts.concurrency} --page-size ${opts.pageSize}${opts.cli ? ' --cli' : ''} --seed ${seed} --replay '${JSON.stringify(s.steps)}'`);
      if (opts.verbose) for (const line of s.result.transcript) out(`    ${line}`);
    }
  }
} catch (err) {
  failed = true;
  out(`model: error: ${(err as Error).stack ?? String(err)}`);
} finally {
  await runner.close({ keep: opts.keep === true }).catch(() => undefined);
}
const elapsed = realNow() - started;
const minutes = elapsed / 60_000;
out(
  `figures: missing ${totals.missing}, duplicated ${totals.duplicated}, not revoked ${totals.notRevoked}, unexpected ${totals.unexpected}, stuck ${totals.stuck}, status counts off ${totals.countsDrift}; ` +
    `${kills} SIGKILLs; dialect ${opts.dialect}; ${(histories / Math.max(minutes, 1e-9)).toFixed(0)} histories/minute (${(elapsed / 1000).toFixed(1)} s, shrinking included)`,
);
out(`model: ${histories} histories, ${steps} steps, ${faults} faults, ${failing} violations`);
process.exitCode = failed || failing > 0 ? 1 : 0;
