/**
 * `npm run test:chaos`: the crash test at full size. For each dialect: 5,000 source records of
 * the four kinds, the worker SIGKILLed at seeded random moments at least 20 times while the
 * source changes and the emulator injects 10 % faults, then drained and judged. Prints one
 * line per dialect and exits non-zero unless every figure is 0.
 *
 * Then, on a fresh database, the replay after losing the state (--replay N records, 0: off):
 * sync, wipe the state tables, backfill the whole range → nothing new stored in Feishu.
 *
 *   node dist/chaos/chaos.js [--dialect pg|mysql|both] [--records N] [--kills N] [--seed N]
 *                            [--fault-rate P] [--rate N] [--churn N] [--replay N] [--verbose] [--keep]
 *
 * Run from the repository root after `npm run build`; the databases are created on the
 * servers of TEST_PG_URL / TEST_MYSQL_URL (default: local PostgreSQL and MariaDB).
 */
import { Command, InvalidArgumentError } from 'commander';
import { createScratchDatabase, type ServerDialect } from '../test/helpers/scratch.js';
import { formatResult, runChaos } from './harness.js';
import { verdictOk } from './oracle.js';
import { formatReplay, replayOk, runReplay } from './replay.js';

function int(min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`an integer ≥ ${min} is required`);
    return n;
  };
}

function probability(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError('a number between 0 and 1 is required');
  return n;
}

const program = new Command('chaos')
  .description('SIGKILL the worker at random moments while the source changes and Feishu misbehaves; then check the ledger')
  .option('--dialect <d>', 'pg, mysql or both', 'both')
  .option('--records <n>', 'seeded source records', int(20), 5_000)
  .option('--kills <n>', 'SIGKILLs of a running worker, at least', int(1), 20)
  .option('--seed <n>', 'seed of the data, the changes, the faults and the kill schedule', int(0), 1)
  .option('--fault-rate <p>', 'share of Feishu calls that fail', probability, 0.1)
  .option('--rate <n>', 'Feishu rate limit of the emulator and the worker, calls/s', int(1), 200)
  .option('--churn <n>', 'source changes per batch (default 0.4 % of the records)', int(1))
  .option('--replay <n>', 'records of the replay-after-state-loss run (0: skip it)', int(0), 1_000)
  .option('--verbose', 'a line per round')
  .option('--keep', 'keep the databases of failed runs for inspection')
  .parse();

const opts = program.opts<{ dialect: string; records: number; kills: number; seed: number; faultRate: number; rate: number; churn?: number; replay: number; verbose?: boolean; keep?: boolean }>();
if (!['pg', 'mysql', 'both'].includes(opts.dialect)) program.error('--dialect: pg, mysql or both');
const dialects: ServerDialect[] = opts.dialect === 'both' ? ['pg', 'mysql'] : [opts.dialect as ServerDialect];

let failed = false;
for (const dialect of dialects) {
  const target = await createScratchDatabase(dialect, `chaos_${dialect}`);
  let ok = false;
  try {
    const r = await runChaos(target, {
      records: opts.records,
      kills: opts.kills,
      seed: opts.seed,
      faultRate: opts.faultRate,
      rateLimit: opts.rate,
      ...(opts.churn !== undefined ? { churn: opts.churn } : {}),
      log: opts.verbose ? (line) => process.stderr.write(`${dialect} ${line}\n`) : undefined,
    });
    ok = verdictOk(r) && r.kills >= opts.kills && r.secretLeaks === 0;
    process.stdout.write(formatResult(r) + '\n');
    if (opts.verbose || !ok) {
      const changes = Object.entries(r.churn).map(([k, v]) => `${k} ${v}`).join(', ');
      process.stderr.write(`${dialect}: source changes: ${changes}; sync table: ${JSON.stringify(r.statuses)}; emulator created ${r.created}, revoked ${r.revoked}\n`);
    }
    for (const p of r.problems) process.stderr.write(`${dialect}:   ${p}\n`);
  } catch (err) {
    process.stdout.write(`${dialect}: error: ${(err as Error).message}\n`);
  } finally {
    if (ok || !opts.keep) await target.drop();
    else {
      process.stderr.write(`${dialect}: database kept: ${target.url}\n`);
      await target.db.destroy();
    }
  }
  if (!ok) failed = true;

  if (opts.replay > 0) {
    const fresh = await createScratchDatabase(dialect, `replay_${dialect}`);
    let good = false;
    try {
      const r = await runReplay(fresh, {
        records: opts.replay,
        seed: opts.seed,
        faultRate: opts.faultRate,
        rateLimit: opts.rate,
        log: opts.verbose ? (line) => process.stderr.write(`${dialect} replay ${line}\n`) : undefined,
      });
      good = replayOk(r);
      process.stdout.write(formatReplay(dialect, opts.replay, r) + '\n');
      for (const p of [...r.before.problems, ...r.after.problems]) process.stderr.write(`${dialect} replay:   ${p}\n`);
    } catch (err) {
      process.stdout.write(`${dialect} replay: error: ${(err as Error).message}\n`);
    } finally {
      if (good || !opts.keep) await fresh.drop();
      else {
        process.stderr.write(`${dialect} replay: database kept: ${fresh.url}\n`);
        await fresh.db.destroy();
      }
    }
    if (!good) failed = true;
  }
}
process.exitCode = failed ? 1 : 0;
