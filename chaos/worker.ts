import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import YAML from 'yaml';

/*
 * The worker under test runs as a real child process of the built CLI, exactly as an operator
 * runs it, and is stopped the hard way: SIGKILL, no handler runs, nothing is flushed.
 */

export const CLI = path.resolve('dist/src/cli/index.js');
const EXAMPLE_CONFIG = path.resolve('config/attendance-sync.example.postgres.yaml');

export interface WorkerSetup {
  readonly configFile: string;
  readonly env: NodeJS.ProcessEnv;
  /** The values no output may hold, asked afresh at each check (tokens are issued as it runs). */
  readonly secrets: () => readonly string[];
}

export interface FeishuTarget {
  readonly url: string;
  readonly appId: string;
  readonly appSecret: string;
  /** The tenant access tokens handed out so far (the emulator knows them). */
  readonly issuedTokens?: () => readonly string[];
}

/** The secrets found in `text` (by position in `secrets`, never the values themselves). */
export function leakedSecrets(text: string, secrets: readonly string[]): number[] {
  const found: number[] = [];
  secrets.forEach((s, i) => {
    if (s.length >= 4 && text.includes(s)) found.push(i);
  });
  return found;
}

/**
 * The app secret, the database password and every tenant access token: the worker talks
 * with all three, so any of them could end up in a log line or an error. The emulator never
 * echoes the app secret, so a check for it alone could not fail.
 */
export function workerSecrets(databaseUrl: string, feishu: FeishuTarget): () => readonly string[] {
  let password = '';
  try {
    password = decodeURIComponent(new URL(databaseUrl).password);
  } catch {
    /* sqlite: no password */
  }
  return () => [feishu.appSecret, ...(password ? [password] : []), ...(feishu.issuedTokens?.() ?? [])];
}

/**
 * The example configuration of the sample schema, pointed at `databaseUrl` and the emulator,
 * with short retry delays (the emulator answers in microseconds) and a one-second schedule.
 */
export function writeWorkerConfig(dir: string, databaseUrl: string, feishu: FeishuTarget, o: { rateLimit: number }): WorkerSetup {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  const raw = YAML.parse(fs.readFileSync(EXAMPLE_CONFIG, 'utf8'));
  raw.feishu.rate_limit = o.rateLimit;
  raw.feishu.concurrency = 8;
  raw.feishu.timeout_ms = 2_000;
  // Faults never run an operation out of attempts: only a real failure may leave it dead.
  raw.feishu.max_attempts = 100;
  raw.feishu.retry_base_ms = 20;
  raw.feishu.retry_max_ms = 300;
  raw.sync.schedule = '*/1 * * * * *';
  // Small pages: more transactions, so more instants at which a kill lands between two.
  raw.sync.page_size = 100;
  // The lookback re-reads recent rows every cycle and would quietly heal a watermark that
  // moved without its operations. The churn commits at once, so 5 s covers its own races
  // (equal timestamps committed out of key order) and no more.
  raw.sync.lookback_seconds = 5;
  // Rescans only when the harness asks (`once --rescan`), never from the daemon's clock.
  raw.sync.rescan_schedule = '0 0 1 1 *';
  raw.sync.lock_lease_seconds = 5;
  raw.log = { level: 'warn', format: 'json' };
  const configFile = path.join(dir, 'attendance-sync.yaml');
  fs.writeFileSync(configFile, YAML.stringify(raw));
  return {
    configFile,
    env: {
      PATH: process.env.PATH,
      TZ: 'UTC',
      SOURCE_DATABASE_URL: databaseUrl,
      FEISHU_BASE_URL: feishu.url,
      FEISHU_APP_ID: feishu.appId,
      FEISHU_APP_SECRET: feishu.appSecret,
    },
    secrets: workerSecrets(databaseUrl, feishu),
  };
}

export interface ChildOutcome {
  readonly args: readonly string[];
  /** SIGKILLed by us while it was still running. */
  readonly killed: boolean;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly ms: number;
  /** The last few KB of stdout and stderr. */
  readonly tail: string;
  /** A secret (app secret, database password, tenant token) appeared in the output. */
  readonly secretLeaked: boolean;
}

export interface KillTrigger {
  /** Kill once this much time has passed. */
  readonly afterMs?: number;
  /** Kill as soon as this turns true (polled every few ms). */
  readonly when?: () => boolean;
  /** Kill as soon as this resolves true (asked again as soon as it answers false). */
  readonly probe?: () => Promise<boolean>;
  /** Called once while the child runs, after this many ms (source changes "meanwhile"). */
  readonly during?: { readonly atMs: number; readonly run: () => Promise<unknown> };
}

const TAIL = 8_000;

/**
 * Run the CLI with `args`; SIGKILL it when the trigger fires, or after `timeoutMs` (then
 * `timedOut`: a worker that should finish did not). Resolves when the process has exited.
 */
export function runWorker(setup: WorkerSetup, args: readonly string[], trigger: KillTrigger = {}, timeoutMs = 600_000): Promise<ChildOutcome & { timedOut: boolean }> {
  const started = Date.now();
  const child = spawn(process.execPath, [CLI, '--config', setup.configFile, ...args], { env: setup.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  let secretLeaked = false;
  const keep = (d: Buffer) => {
    tail = (tail + d.toString()).slice(-TAIL);
    // The tail overlaps the previous chunk, so a secret split between two chunks is seen too.
    if (!secretLeaked && leakedSecrets(tail, setup.secrets()).length > 0) secretLeaked = true;
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let killed = false;
  let timedOut = false;
  let during: Promise<unknown> = Promise.resolve();
  let duringStarted = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  let alive = true;
  void exited.then(() => (alive = false), () => (alive = false));
  const timer = setInterval(() => {
    if (!alive) return;
    const elapsed = Date.now() - started;
    if (trigger.during && !duringStarted && elapsed >= trigger.during.atMs) {
      duringStarted = true;
      during = trigger.during.run();
    }
    const fire = (trigger.afterMs !== undefined && elapsed >= trigger.afterMs) || (trigger.when?.() ?? false);
    if (fire || elapsed >= timeoutMs) {
      if (!fire) timedOut = true;
      killed = true;
      child.kill('SIGKILL');
      clearInterval(timer);
    }
  }, 5);
  const probe = trigger.probe;
  if (probe) {
    void (async () => {
      while (alive && !killed) {
        const hit = await probe().catch(() => false);
        if (hit && alive && !killed) {
          killed = true;
          child.kill('SIGKILL');
          clearInterval(timer);
          return;
        }
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
  }
  return exited.then(async ({ code, signal }) => {
    clearInterval(timer);
    // The source changes whether or not the child lived long enough to see them: the
    // source's history must depend on the seed alone.
    if (trigger.during && !duringStarted) during = trigger.during.run();
    await during;
    // Killed while alive is what counts; a kill that raced with a normal exit does not.
    return { args, killed: killed && signal === 'SIGKILL', code, signal, ms: Date.now() - started, tail, timedOut, secretLeaked };
  });
}
