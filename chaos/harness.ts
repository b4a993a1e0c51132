import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEmulator, type Emulator, type FaultSpec, type LedgerEntry } from '../src/emulator/index.js';
import { seededRandom } from '../src/random.js';
import { stateTables } from '../src/state/tables.js';
import type { ChaosDatabase } from '../test/helpers/scratch.js';
import { verify, type Verdict } from './oracle.js';
import { emptyChurnCounts, seedSource, SourceChurn, type ChurnCounts, type SeededSource } from './source.js';
import { leakedSecrets, runWorker, writeWorkerConfig, type ChildOutcome, type KillTrigger, type WorkerSetup } from './worker.js';

/*
 * The crash test. The worker runs as a child process (`once`, or the `run` daemon) and is
 * SIGKILLed at seeded random moments, again and again, while the source keeps changing and
 * the emulator injects faults, "stored but the reply lost" among them. Then it runs to the
 * end without kills, and the emulator's ledger is compared with the source, row by row
 * (oracle.ts).
 *
 * A run dies at a random time, after a random number of sends, or right after it moved a
 * watermark (the read side's commit point). Runs never rescan: a rescan re-reads everything
 * and would hide a lost page; the final drain rescans once, after a first verdict.
 *
 * What the seed fixes: the data, every change to the source (so the source's final state),
 * the emulator's fault draws, and the kill schedule (mode of each run, when or after how many
 * calls it dies). What it cannot fix is the host's timing, so the exact instants differ.
 */

export const STATE_PREFIX = 'attendance_sync_';

export interface ChaosOptions {
  /** Seeded source records over the four kinds. */
  readonly records: number;
  /** SIGKILLs of a running worker, at least. */
  readonly kills: number;
  readonly seed: number;
  /** Share of attendance calls that get a fault. */
  readonly faultRate: number;
  /** Feishu rate limit of the emulator and the worker (calls/s). */
  readonly rateLimit?: number;
  /** Source changes per batch (two batches per round); default 0.4 % of the records, at least 4. */
  readonly churn?: number;
  /** Progress lines. */
  readonly log?: (line: string) => void;
}

/**
 * The figures (missing, duplicated, unrevoked, stuck, contentDiff) add up two verdicts: one
 * after the final drain, before any rescan (rows deleted outright set aside), and one after
 * the rescan. Both must be clean.
 */
export interface ChaosResult extends Verdict {
  readonly beforeRescan: Verdict;
  readonly dialect: string;
  readonly records: number;
  readonly kills: number;
  readonly rounds: number;
  /** Children that exited on their own during the kill rounds (finished, or found the lock taken). */
  readonly exitedOnTheirOwn: number;
  /** `once` runs needed to drain after the last kill. */
  readonly drainRuns: number;
  readonly churn: ChurnCounts;
  readonly calls: number;
  readonly faults: number;
  readonly faultsByKind: Readonly<Record<string, number>>;
  /**
   * Creates Feishu refused as "already exists": a kill (or a lost reply) fell between Feishu
   * storing an approval and the worker recording it, and the restart resent the same key.
   */
  readonly conflicts: number;
  /** The emulator's ledger at the end. */
  readonly entries: readonly LedgerEntry[];
  readonly created: number;
  readonly revoked: number;
  readonly seconds: number;
  /** From the last kill until the outbox was empty (the final drain). */
  readonly recoverySeconds: number;
  /** Worker runs whose output held the app secret, plus 1 if the sync table did. */
  readonly secretLeaks: number;
}

/** The fault mix: 30 % each "stored, then the reply lost" and plain 5xx, 20 % each dropped connections and 429s. */
export function faultMix(rate: number): FaultSpec {
  return { '5xx': rate * 0.3, 'stored-then-failed': rate * 0.3, drop: rate * 0.2, '429': rate * 0.2 };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Attendance calls (not token fetches) the emulator has answered so far. */
function writes(emu: Emulator): number {
  const c = emu.stats().calls;
  return c.create + c.process;
}

function check(out: ChildOutcome & { timedOut: boolean }, what: string): void {
  if (out.code === 2) throw new Error(`${what}: the worker refused its configuration (exit 2):\n${out.tail}`);
  if (out.timedOut) throw new Error(`${what}: the worker did not finish in time:\n${out.tail}`);
}

async function watermarks(target: ChaosDatabase): Promise<string> {
  const rows = await target.db(stateTables(STATE_PREFIX).watermarks).select('kind', 'cursor_value', 'cursor_key').orderBy('kind');
  return JSON.stringify(rows);
}

async function outboxDepth(target: ChaosDatabase): Promise<number> {
  const t = stateTables(STATE_PREFIX);
  const row = (await target.db(t.syncRecords).whereIn('status', ['pending', 'sending']).count({ n: '*' }).first()) as { n: number | string } | undefined;
  return Number(row?.n ?? 0);
}

/**
 * Run the worker command (`once`, `backfill …`) without kills until the outbox is empty.
 * With `rescan`, `--rescan` is added until one run has got past the lock. Returns the runs.
 */
export async function drain(
  setup: WorkerSetup,
  target: ChaosDatabase,
  command: readonly string[],
  o: { rescan?: boolean; log?: (line: string) => void; maxRuns?: number; onOutcome?: (out: ChildOutcome) => void } = {},
): Promise<number> {
  let runs = 0;
  let rescanned = !o.rescan;
  while (runs < (o.maxRuns ?? 40)) {
    runs++;
    const out = await runWorker(setup, [...command, ...(rescanned ? [] : ['--rescan'])], {}, 600_000);
    o.onOutcome?.(out);
    check(out, `${command[0]} run ${runs}`);
    // A killed worker's session lock can outlive it by a moment: then nothing ran.
    const lockHeld = /another worker holds the lock/.test(out.tail);
    if (!lockHeld) rescanned = true;
    const depth = await outboxDepth(target);
    o.log?.(`${command[0]} ${runs}: exit ${out.code} after ${out.ms} ms, outbox ${depth}`);
    if (rescanned && !lockHeld && depth === 0) return runs;
    await sleep(lockHeld ? 500 : 350);
  }
  return runs;
}

/**
 * Seed `target` (an empty database), crash the worker at least `kills` times while the source
 * changes, drain, and judge. The emulator lives in this process; the worker is a child.
 */
export async function runChaos(target: ChaosDatabase, o: ChaosOptions): Promise<ChaosResult> {
  const started = Date.now();
  const log = o.log ?? (() => {});
  const rate = o.rateLimit ?? 200;
  const seeded: SeededSource = await seedSource(target.db, { records: o.records, seed: o.seed });
  const churnPerBatch = o.churn ?? Math.max(4, Math.round(o.records * 0.004));
  const schedule = seededRandom(o.seed * 7919 + 1);
  const churn = await SourceChurn.open(target.db, seededRandom(o.seed * 7919 + 2), seeded);
  const changed = emptyChurnCounts();
  const applyChurn = async (label: string) => {
    const c = await churn.batch(churnPerBatch, label);
    for (const k of Object.keys(c) as Array<keyof ChurnCounts>) changed[k] += c[k];
  };

  const emu = await startEmulator({ strict: true, seed: o.seed, faults: faultMix(o.faultRate), rateLimit: rate });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attendance-chaos-'));
  try {
    const setup: WorkerSetup = writeWorkerConfig(dir, target.url, emu, { rateLimit: rate });
    // How many sends a run may make before it dies: up to a sixth of the data set, so that
    // most of the work is done by workers that are killed, not by the final drain.
    const callSpan = Math.max(10, Math.min(1_000, Math.round(o.records / 6)));
    // The latest moment a timed kill may come; a small data set is synced in a few seconds.
    const maxKillMs = Math.max(1_500, Math.min(6_000, o.records * 1.2));

    let kills = 0;
    let rounds = 0;
    let secretLeaks = 0;
    let exitedOnTheirOwn = 0;
    const maxRounds = o.kills * 4 + 10;
    while (kills < o.kills || rounds < o.kills) {
      if (rounds >= maxRounds) throw new Error(`only ${kills} kills in ${rounds} rounds`);
      rounds++;
      // Churn only in the planned rounds: extra rounds (a child that finished before its
      // kill) must not change the source, or its final state would depend on the timing.
      const planned = rounds <= o.kills;
      // Every draw happens in every round, used or not, so the schedule is fixed by the seed.
      const daemon = schedule() < 0.35 || !planned;
      const how = schedule();
      const byWatermark = planned && how < 0.25;
      const byTime = !byWatermark && (how < 0.5 || !planned);
      const afterMs = Math.round(150 + schedule() * maxKillMs);
      const afterCalls = 1 + Math.floor(schedule() * callSpan);
      const duringAt = Math.round(schedule() * 3_000);
      if (planned) await applyChurn(`r${rounds}a`);
      const base = writes(emu);
      const conflictsBefore = emu.stats().duplicates;
      const marks = await watermarks(target);
      const trigger: KillTrigger = byWatermark
        ? // Right after a page's commit moved a watermark: the instant a watermark that
          // moved apart from its operations would lose that page.
          { probe: async () => (await watermarks(target)) !== marks, afterMs: maxKillMs * 3 }
        : byTime
          ? { afterMs }
          : { when: () => writes(emu) - base >= afterCalls, afterMs: maxKillMs * 3 };
      // Never --rescan here: a rescan re-reads every row and would heal what a crash broke.
      const args = daemon ? ['run'] : ['once'];
      const out = await runWorker(setup, args, planned ? { ...trigger, during: { atMs: duringAt, run: () => applyChurn(`r${rounds}b`) } } : trigger);
      if (out.secretLeaked) secretLeaks++;
      check(out, `round ${rounds} (${args.join(' ')})`);
      if (out.killed) kills++;
      else exitedOnTheirOwn++;
      log(
        `round ${rounds}: ${args.join(' ')} ${byWatermark ? 'kill when a watermark moves' : byTime ? `kill at ${afterMs} ms` : `kill after ${afterCalls} sends`} → ${out.killed ? 'killed' : `exited ${out.code}`} after ${out.ms} ms, ${writes(emu) - base} sends (${emu.stats().duplicates - conflictsBefore} already stored), outbox ${await outboxDepth(target)}`,
      );
    }

    // The end: no more kills, no more changes; run until the outbox is empty and judge. Then
    // rescan (what finds rows deleted outright), drain again and judge again. The first
    // verdict sets the deleted rows aside; it is the one a lost page would fail.
    const t = stateTables(STATE_PREFIX);
    const onOutcome = (out: ChildOutcome) => {
      if (out.secretLeaked) secretLeaks++;
    };
    const recoveryStarted = Date.now();
    let drainRuns = await drain(setup, target, ['once'], { log, onOutcome });
    const recoverySeconds = (Date.now() - recoveryStarted) / 1000;
    const beforeRescan = await verify(target.db, t, emu.ledger(), { ignoreGone: true });
    drainRuns += await drain(setup, target, ['once'], { rescan: true, log, onOutcome });
    // No column of the sync or runs table may hold a secret either.
    const stored = JSON.stringify([await target.db(t.syncRecords).select('*'), await target.db(t.runs).select('*')]);
    if (leakedSecrets(stored, setup.secrets()).length > 0) secretLeaks++;
    const entries = emu.ledger();
    const final = await verify(target.db, t, entries);
    const verdict: Verdict = {
      ...final,
      missing: beforeRescan.missing + final.missing,
      duplicated: beforeRescan.duplicated + final.duplicated,
      unrevoked: beforeRescan.unrevoked + final.unrevoked,
      stuck: beforeRescan.stuck + final.stuck,
      contentDiff: { missing: beforeRescan.contentDiff.missing + final.contentDiff.missing, surplus: beforeRescan.contentDiff.surplus + final.contentDiff.surplus },
      problems: [...beforeRescan.problems.map((p) => `before the rescan: ${p}`), ...final.problems],
    };
    const stats = emu.stats();
    return {
      ...verdict,
      beforeRescan,
      dialect: target.dialect,
      records: o.records,
      kills,
      rounds,
      exitedOnTheirOwn,
      drainRuns,
      churn: changed,
      calls: stats.calls.create + stats.calls.query + stats.calls.process,
      faults: Object.values(stats.faults).reduce((a, b) => a + (b ?? 0), 0),
      faultsByKind: { ...stats.faults },
      conflicts: stats.duplicates,
      entries,
      created: stats.created,
      revoked: stats.revoked,
      seconds: (Date.now() - started) / 1000,
      recoverySeconds,
      secretLeaks,
    };
  } finally {
    await emu.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** One line per dialect: the figures the requirement names, then the context. */
export function formatResult(r: ChaosResult): string {
  const mix = Object.entries(r.faultsByKind)
    .map(([k, v]) => `${k} ${v}`)
    .join(' / ');
  return (
    `${r.dialect}: records ${r.records}, kills ${r.kills}, missing ${r.missing}, duplicated ${r.duplicated}, unrevoked ${r.unrevoked}, stuck ${r.stuck}, ` +
    `dead ${r.statuses.dead ?? 0} (expected 0), secret leaks ${r.secretLeaks}, ` +
    `ledger ${r.ledger} (approved ${r.active}, expected ${r.expected}, content diff ${r.contentDiff.missing}/${r.contentDiff.surplus}), ` +
    `calls ${r.calls} (${(r.calls / r.seconds).toFixed(1)}/s), faults ${r.faults} (${mix}), conflicts ${r.conflicts}, rounds ${r.rounds}, ` +
    `drain runs ${r.drainRuns}, recovery ${r.recoverySeconds.toFixed(1)} s, seconds ${r.seconds.toFixed(1)}`
  );
}
