import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import YAML from 'yaml';
import type { Knex } from 'knex';
import { DateTime } from 'luxon';
import { connect } from '../src/db/connect.js';
import type { DialectName } from '../src/db/url.js';
import { startEmulator, type Emulator, type FaultSpec } from '../src/emulator/index.js';
import { migrateLatest } from '../src/state/migrate.js';
import { stateTables } from '../src/state/tables.js';
import { statusCounts } from '../src/state/outbox.js';
import { createScratchDatabase } from '../test/helpers/scratch.js';
import { clockOffset, realNow, setClockOffset } from './clock.js';
import { clearModelSource, createModelSchema, EMPLOYEES, judge, modelKinds, ModelSource, verdictTotal, type ContentVerdict, type ModelKind, type ModelRow } from './source.js';
import { formatStep, isFaultStep, type Step } from './steps.js';

/*
 * One history of the model test: a fresh source and state (tables emptied), a reset
 * emulator, the steps in order, then every fault off and a drain, and two verdicts by content:
 *
 *   A  after draining with `once` only (plus `retry` of failed and dead): what the cursor can
 *      see must be right; rows changed in ways the cursor cannot see are set aside.
 *   B  after draining with `once --rescan`: everything must be right.
 *
 * Operator actions go through the CLI's own entry point (`main`, the function
 * dist/src/cli/index.js calls) in this process, or as child processes with --cli. A killed
 * `run` is always a real child process, SIGKILLed. Between two operator actions eleven
 * minutes pass on the clock the worker and the emulator share (clock.ts): every retry delay
 * (at most ten minutes here) has run out, so what is due does not depend on the host's speed.
 */

const CLI = path.resolve('dist/src/cli/index.js');
const CLOCK = pathToFileURL(path.resolve('dist/model/clock.js')).href;
const WORKER = new URL('./cliWorker.js', import.meta.url);
const PREFIX = 'attendance_sync_';
const MINUTE = 60_000;
const DAY = 86_400_000;

export interface HistoryResult {
  readonly steps: readonly Step[];
  /** A command that did not finish within the command timeout (a cycle that never ends). */
  readonly hung: string | null;
  readonly before: ContentVerdict;
  readonly after: ContentVerdict;
  /** Operations still pending, sending, failed or dead after the drain. */
  readonly stuck: number;
  /** (kind, status) pairs whose kept count (`status`, the console) differs from a count of the sync table. */
  readonly countsDrift: readonly string[];
  readonly faults: number;
  readonly kills: number;
  readonly ms: number;
  /** What the commands printed, step by step (for a failing history). */
  readonly transcript: readonly string[];
}

export function violations(r: HistoryResult): number {
  return verdictTotal(r.before) + verdictTotal(r.after) + (r.hung ? 1 : 0) + r.countsDrift.length;
}

/** A command that did not finish in time (it was stopped). */
export class HangError extends Error {}

export interface RunnerOptions {
  readonly dialect: DialectName;
  /** Every operator action as a child process (slower). */
  readonly cli: boolean;
  readonly concurrency: number;
  readonly pageSize: number;
  /** A command taking longer than this has hung. */
  readonly commandTimeoutMs: number;
}

interface Conditions {
  storedThenFailed: boolean;
  /** Operator actions the outage still lasts (0: none): long enough to use up max_attempts (3). */
  outage: number;
  outOfScope: number | null;
  sealDay: number | null;
}

export class ModelRunner {
  private thread: Worker | null = null;
  private requests = 0;

  private constructor(
    readonly o: RunnerOptions,
    readonly url: string,
    readonly db: Knex,
    private readonly dropDb: () => Promise<void>,
    readonly emu: Emulator,
    readonly dir: string,
    readonly configFile: string,
  ) {}

  static async open(o: RunnerOptions): Promise<ModelRunner> {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attendance-model-'));
    let url: string;
    let db: Knex;
    let dropDb: () => Promise<void>;
    if (o.dialect === 'sqlite') {
      url = `sqlite:${path.join(dir, 'model.sqlite')}`;
      db = connect(url);
      dropDb = async () => void (await db.destroy());
    } else {
      const s = await createScratchDatabase(o.dialect, `model_${o.dialect}`);
      url = s.url;
      db = s.db;
      dropDb = () => s.drop();
    }
    await createModelSchema(db);
    await migrateLatest(db, PREFIX);
    const emu = await startEmulator({ strict: true, rateLimit: 100_000 });
    const raw = {
      feishu: {
        app_id: '${FEISHU_APP_ID}',
        app_secret: '${FEISHU_APP_SECRET}',
        base_url: '${FEISHU_BASE_URL}',
        employee_type: 'employee_no',
        time_zone: 'Asia/Shanghai',
        rate_limit: 1_000,
        concurrency: o.concurrency,
        timeout_ms: 2_000,
        max_attempts: 3,
        retry_base_ms: MINUTE,
        retry_max_ms: 10 * MINUTE,
      },
      source: { url: '${SOURCE_DATABASE_URL}', time_zone: 'Asia/Shanghai' },
      state: { table_prefix: PREFIX },
      sync: {
        schedule: '*/1 * * * * *',
        page_size: o.pageSize,
        // Changes are stamped strictly after every read (source.ts): no late commits to re-read,
        // and a lookback would quietly heal a watermark that went wrong.
        lookback_seconds: 0,
        namespace: 'model',
        rescan_window_days: 60,
        rescan_schedule: '0 0 1 1 *',
        lock_lease_seconds: 5,
      },
      log: { level: 'error', format: 'json' },
      kinds: modelKinds(),
    };
    const configFile = path.join(dir, 'attendance-sync.yaml');
    fs.writeFileSync(configFile, YAML.stringify(raw));
    Object.assign(process.env, { TZ: 'UTC', SOURCE_DATABASE_URL: url, FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: emu.appId, FEISHU_APP_SECRET: emu.appSecret });
    delete process.env.STATE_DATABASE_URL;
    delete process.env.ATTENDANCE_SYNC_CONFIG;
    return new ModelRunner(o, url, db, dropDb, emu, dir, configFile);
  }

  async close(o: { keep?: boolean } = {}): Promise<void> {
    await this.thread?.terminate();
    this.thread = null;
    await this.emu.close();
    if (o.keep) {
      await this.db.destroy();
      process.stderr.write(`model: database kept: ${this.url}\n`);
      return;
    }
    await this.dropDb();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private env(): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH,
      TZ: 'UTC',
      SOURCE_DATABASE_URL: this.url,
      FEISHU_BASE_URL: this.emu.url,
      FEISHU_APP_ID: this.emu.appId,
      FEISHU_APP_SECRET: this.emu.appSecret,
      MODEL_CLOCK_OFFSET_MS: String(clockOffset()),
    };
  }

  private spawnCli(args: readonly string[]) {
    return spawn(process.execPath, ['--import', CLOCK, CLI, '--config', this.configFile, ...args], { env: this.env(), stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** The CLI, in this process (its own `main`) or as a child; output captured. */
  private async invoke(args: readonly string[]): Promise<{ code: number; out: string }> {
    const hung = () => new HangError(`attendance-sync ${args.join(' ')} did not finish in ${this.o.commandTimeoutMs / 1000} s`);
    if (this.o.cli) {
      const child = this.spawnCli(args);
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      let timedOut = false;
      const timer = setTimeout(() => ((timedOut = true), child.kill('SIGKILL')), this.o.commandTimeoutMs);
      const code = await new Promise<number>((resolve, reject) => {
        child.on('error', reject);
        child.on('close', (c) => resolve(c ?? 1));
      }).finally(() => clearTimeout(timer));
      if (timedOut) throw hung();
      return { code, out };
    }
    const worker = this.worker();
    const id = ++this.requests;
    let timer: NodeJS.Timeout | undefined;
    let onError: ((err: Error) => void) | undefined;
    try {
      return await new Promise<{ code: number; out: string }>((resolve, reject) => {
        onError = reject;
        const onMessage = (m: { id: number; code: number; out: string }) => {
          if (m.id !== id) return;
          worker.off('message', onMessage);
          resolve(m);
        };
        worker.on('message', onMessage);
        worker.once('error', onError);
        timer = setTimeout(() => {
          // Stops the command even in a loop that never yields; the next command gets a new thread.
          this.thread = null;
          void worker.terminate();
          reject(hung());
        }, this.o.commandTimeoutMs);
        worker.postMessage({ id, args: ['--config', this.configFile, ...args], clockOffsetMs: clockOffset() });
      });
    } finally {
      clearTimeout(timer);
      if (onError) worker.off('error', onError);
    }
  }

  private worker(): Worker {
    this.thread ??= new Worker(WORKER, { env: { ...process.env }, stdout: false, stderr: false });
    return this.thread;
  }

  /** Run a command; a session lock a killed worker still holds for a moment is waited for. */
  async command(args: readonly string[], transcript: string[]): Promise<number> {
    const t0 = realNow();
    for (let i = 0; ; i++) {
      const r = await this.invoke(args);
      if (r.code === 2) throw new Error(`attendance-sync ${args.join(' ')}: exit 2 (configuration or usage):\n${r.out}`);
      if (/another worker holds the lock/.test(r.out) && i < 200) {
        await new Promise((res) => setTimeout(res, 25));
        continue;
      }
      transcript.push(`  $ attendance-sync ${args.join(' ')} → ${r.code} (${realNow() - t0} ms)${r.out.trim() ? `\n${indent(r.out.trim())}` : ''}`);
      return r.code;
    }
  }

  /** `run` as a child process, SIGKILLed after `afterCalls` Feishu calls (or once it went idle). */
  private async killRun(afterCalls: number, transcript: string[]): Promise<boolean> {
    const calls = () => {
      const c = this.emu.stats().calls;
      return c.create + c.process + c.query;
    };
    const base = calls();
    const t = stateTables(PREFIX);
    const started = realNow();
    const child = this.spawnCli(['run']);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    let alive = true;
    const exited = new Promise<void>((resolve) => child.on('close', () => ((alive = false), resolve())));
    let killed = false;
    let reason = '';
    while (alive) {
      const n = calls() - base;
      let idle = false;
      if (n < afterCalls && child.pid !== undefined) {
        const row = (await this.db(t.runs).where({ pid: child.pid }).whereNotNull('finished_at').first().catch(() => undefined)) as unknown;
        idle = row !== undefined;
      }
      if (n >= afterCalls || idle || realNow() - started > 15_000) {
        reason = n >= afterCalls ? `after ${n} calls` : idle ? `idle after ${n} calls` : 'at the time limit';
        killed = child.kill('SIGKILL');
        break;
      }
      await new Promise((r) => setTimeout(r, 3));
    }
    await exited;
    transcript.push(`  $ attendance-sync run → ${killed ? `SIGKILL ${reason}` : 'exited on its own'}${out.trim() ? `\n${indent(out.trim().slice(-2000))}` : ''}`);
    return killed;
  }

  private applyConditions(c: Conditions, base: DateTime): void {
    const faults: FaultSpec = c.outage > 0 ? { '5xx': 0.5, 'stored-then-failed': 0.5 } : c.storedThenFailed ? { 'stored-then-failed': 0.35 } : {};
    this.emu.setOptions({
      faults,
      users: c.outOfScope === null ? null : EMPLOYEES.filter((_, i) => i !== c.outOfScope),
      sealedUntil: c.sealDay === null ? null : base.plus({ days: c.sealDay }).toFormat('yyyyMMdd'),
    });
  }

  private async reset(seed: number): Promise<void> {
    const t = stateTables(PREFIX);
    for (const table of [t.syncRecords, t.statusCounts, t.records, t.watermarks, t.runs, t.lock]) await this.db(table).delete();
    await clearModelSource(this.db);
    setClockOffset(0);
    this.emu.setOptions({ seed, faults: {}, users: null, sealedUntil: null });
    this.emu.reset();
  }

  /** The kept counts against a count of the sync table, after every SIGKILL and fault of the history. */
  private async countsDrift(): Promise<string[]> {
    const t = stateTables(PREFIX);
    const real = (await this.db(t.syncRecords).select('kind', 'status').count({ n: '*' }).groupBy('kind', 'status')) as Array<{ kind: string; status: string; n: number | string }>;
    const want = new Map(real.map((r) => [`${r.kind}/${r.status}`, Number(r.n)]));
    const got = new Map((await statusCounts(this.db, t)).map((r) => [`${r.kind}/${r.status}`, r.count]));
    return [...new Set([...want.keys(), ...got.keys()])].filter((k) => (want.get(k) ?? 0) !== (got.get(k) ?? 0)).map((k) => `${k}: counted ${got.get(k) ?? 0}, in the table ${want.get(k) ?? 0}`);
  }

  private async counts(): Promise<{ inFlight: number; failed: number; dead: number; stuck: number }> {
    const t = stateTables(PREFIX);
    const rows = (await this.db(t.syncRecords).select('status').count({ n: '*' }).groupBy('status')) as Array<{ status: string; n: number | string }>;
    const by = Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
    const inFlight = (by.pending ?? 0) + (by.sending ?? 0);
    const failed = by.failed ?? 0;
    const dead = by.dead ?? 0;
    return { inFlight, failed, dead, stuck: inFlight + failed + dead };
  }

  /** Run one history from an empty source and state. */
  async run(steps: readonly Step[], seed: number): Promise<HistoryResult> {
    const started = realNow();
    await this.reset(seed);
    const model = new ModelSource(this.db);
    const cond: Conditions = { storedThenFailed: false, outage: 0, outOfScope: null, sealDay: null };
    const transcript: string[] = [];
    const from = model.base.minus({ days: 30 }).toFormat('yyyy-MM-dd');
    const to = model.base.plus({ days: 30 }).toFormat('yyyy-MM-dd');
    const passes = () => setClockOffset(clockOffset() + 11 * MINUTE);
    const ends = () => {
      // The outage ends by itself after three operator actions: every attempt of an
      // operation it caught has failed by then (max_attempts 3), and a longer one would only
      // make the history slow (every call retried with backoff).
      if (cond.outage > 0) cond.outage--;
    };
    let faults = 0;
    let kills = 0;
    const dupJoined = new Set<number>();
    const pick = (kind: ModelKind, ref: number, want?: (r: ModelRow) => boolean) => model.pick(kind, ref, (r) => !r.deleted && (want?.(r) ?? true));

    let hung: string | null = null;
    try {
      for (const step of steps) {
        transcript.push(formatStep(step));
        if (isFaultStep(step)) faults++;
        switch (step.t) {
          case 'insert':
            await model.insert(step.kind, step);
            break;
          case 'nullKey':
            await model.insert(step.kind, { ...step, hours: 1, approved: true, nullKey: true });
            break;
          case 'edit': {
            const r = pick(step.kind, step.ref);
            if (r) await model.editTimes(r, step.minutes);
            break;
          }
          case 'cancel': {
            const r = pick(step.kind, step.ref, (x) => x.status === 'approved');
            if (r) await model.setStatus(r, 'cancelled');
            break;
          }
          case 'reapprove': {
            const r = pick(step.kind, step.ref, (x) => x.status !== 'approved');
            if (r) await model.setStatus(r, 'approved');
            break;
          }
          case 'hardDelete': {
            const r = pick(step.kind, step.ref);
            if (r) await model.hardDelete(r);
            break;
          }
          case 'futureUpdatedAt': {
            const r = pick(step.kind, step.ref, (x) => !x.future);
            if (r) await model.futureUpdatedAt(r);
            break;
          }
          case 'dupJoin': {
            const r = pick('leave', step.ref, (x) => !dupJoined.has(x.rid));
            if (r) {
              dupJoined.add(r.rid);
              await model.duplicateJoin(r);
            }
            break;
          }
          case 'once':
            passes();
            await this.command(['once'], transcript);
            ends();
            break;
          case 'rescan':
            passes();
            await this.command(['once', '--rescan'], transcript);
            ends();
            break;
          case 'retry':
            passes();
            await this.command(['retry', '--status', step.status], transcript);
            ends();
            break;
          case 'backfill':
          case 'resend':
            passes();
            await this.command(['backfill', '--from', from, '--to', to, ...(step.t === 'resend' ? ['--resend'] : [])], transcript);
            ends();
            break;
          case 'kill':
            passes();
            if (await this.killRun(step.afterCalls, transcript)) kills++;
            ends();
            break;
          case 'storedThenFailed':
            cond.storedThenFailed = step.on;
            break;
          case 'outage':
            cond.outage = step.on ? 3 : 0;
            break;
          case 'scope':
            cond.outOfScope = step.emp;
            break;
          case 'seal':
            cond.sealDay = step.day;
            break;
          case 'clock':
            setClockOffset(clockOffset() + step.days * DAY);
            break;
        }
        this.applyConditions(cond, model.base);
      }

      // The end: Feishu healthy again, the source repaired, the operator drains.
      transcript.push('-- faults off, joins repaired, drain');
      this.applyConditions({ storedThenFailed: false, outage: 0, outOfScope: null, sealDay: null }, model.base);
      await model.repairJoins();
      const drain = async (rescan: boolean) => {
        for (let round = 0; round < 8; round++) {
          passes();
          // `retry` of nothing changes nothing: skipped when there is nothing to queue again.
          const c = await this.counts();
          if (c.failed > 0) await this.command(['retry', '--status', 'failed'], transcript);
          if (c.dead > 0) await this.command(['retry', '--status', 'dead'], transcript);
          // Every deletion of the model is real: the operator confirms a mass revoke the rescan
          // refused (a whole kind deleted), as the refusal's message says to.
          await this.command(rescan ? ['once', '--rescan', '--allow-mass-revoke'] : ['once'], transcript);
          if ((await this.counts()).stuck === 0) return;
        }
      };
      await drain(false);
      const before = await judge(this.db, model, this.emu.ledger(), { excuseHidden: true });
      transcript.push('-- rescan, drain');
      await drain(true);
      const after = await judge(this.db, model, this.emu.ledger(), { excuseHidden: false });
      const { stuck } = await this.counts();
      const countsDrift = await this.countsDrift();
      return { steps, hung, before, after, stuck, countsDrift, faults, kills, ms: realNow() - started, transcript };
    } catch (err) {
      if (!(err instanceof HangError)) throw err;
      hung = err.message;
      transcript.push(`  ${hung}`);
      const none: ContentVerdict = { missing: 0, duplicated: 0, notRevoked: 0, unexpected: 0, examples: [] };
      return { steps, hung, before: none, after: none, stuck: 0, countsDrift: [], faults, kills, ms: realNow() - started, transcript };
    }
  }
}

function indent(s: string): string {
  return s
    .split('\n')
    .map((l) => `      ${l}`)
    .join('\n');
}
