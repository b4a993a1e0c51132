import { setTimeout as sleep } from 'node:timers/promises';
import type { ResolvedConfig } from '../config/load.js';
import { DatabaseConnectError } from '../db/connect.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { openDatabases, openPipeline, type Pipeline } from './wiring.js';

export interface WaitOptions {
  /** Aborted (SIGINT / SIGTERM): stop waiting, resolve null. */
  readonly signal: AbortSignal;
  /** First pause between attempts (doubles up to `capMs`). */
  readonly baseMs?: number;
  readonly capMs?: number;
}

/** A database that does not answer yet (down, starting up, unreachable): worth waiting for. */
function notUpYet(err: unknown): boolean {
  if (!(err instanceof DatabaseConnectError)) return false;
  if (err.code === 'DATABASE_UNREACHABLE') return true;
  const cause = err.cause as { code?: unknown } | undefined;
  // PostgreSQL: "the database system is starting up / shutting down"; MySQL: too many connections.
  return cause?.code === '57P03' || cause?.code === 'ER_CON_COUNT_ERROR';
}

/** Which database of the configuration does not answer (null: both do). */
async function unreachable(config: ResolvedConfig, signal: AbortSignal): Promise<{ database: string; err: unknown } | null> {
  const dbs = openDatabases(config, { poolMax: 1 });
  const drop = () => void dbs.close().catch(() => undefined);
  signal.addEventListener('abort', drop, { once: true });
  const shared = dbs.state === dbs.source;
  try {
    for (const [database, db] of shared ? ([['source and state', dbs.state]] as const) : ([['state', dbs.state], ['source', dbs.source]] as const)) {
      try {
        await db.raw('select 1');
      } catch (err) {
        if (!notUpYet(err)) throw err;
        return { database, err };
      }
    }
    return null;
  } finally {
    signal.removeEventListener('abort', drop);
    await dbs.close().catch(() => undefined);
  }
}

/**
 * The daemon's start: open the pipeline once the state and source databases answer,
 * retrying with a doubling pause and one log line per attempt (which database and why;
 * the reason names host and port, never the password). Any other failure (a missing
 * SQLite file, tables not migrated, another tenant, a refused login) is thrown at once.
 * Null when the signal aborted the wait.
 */
export async function openPipelineWhenReachable(config: ResolvedConfig, logger: Logger, opts: Parameters<typeof openPipeline>[2], wait: WaitOptions): Promise<Pipeline | null> {
  const base = wait.baseMs ?? 1_000;
  const cap = wait.capMs ?? 30_000;
  for (let attempt = 1; ; attempt++) {
    if (wait.signal.aborted) return null;
    let down: { database: string; err: unknown } | null;
    try {
      // A host that does not answer holds a probe up to the connect timeout: a signal does not wait for it.
      const probe = unreachable(config, wait.signal);
      const aborted = new Promise<'aborted'>((r) => wait.signal.addEventListener('abort', () => r('aborted'), { once: true }));
      const first = await Promise.race([probe, aborted]);
      if (first === 'aborted') {
        probe.catch(() => undefined);
        return null;
      }
      down = first;
      if (!down) return await openPipeline(config, logger, opts);
    } catch (err) {
      if (!notUpYet(err)) throw err;
      down = { database: /the source database/.test((err as Error).message) ? 'source' : 'state', err };
    }
    const retryInMs = Math.min(cap, base * 2 ** Math.min(attempt - 1, 20));
    logger.warn(`waiting for the ${down.database} database`, { database: down.database, attempt, retryInMs, error: describeError(down.err) });
    try {
      await sleep(retryInMs, undefined, { signal: wait.signal });
    } catch {
      return null;
    }
  }
}
