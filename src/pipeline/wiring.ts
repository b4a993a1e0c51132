/**
 * Wiring: everything a command needs opened and built before the pipeline runs — the
 * databases, the Feishu client, the leader lock, the sender. The CLI asks here; nothing in
 * pipeline/ knows the CLI.
 */
import { retryPolicyFromConfig } from '../retryPolicy.js';
import os from 'node:os';
import crypto from 'node:crypto';
import type { ResolvedConfig } from '../config/load.js';
import { AppError, ExitCode } from '../errors.js';
import { FeishuClient } from '../feishu/client.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { connect, type Knex } from '../db/connect.js';
import { stateTables, type StateTables } from '../state/tables.js';
import { Sender } from '../send/sender.js';
import { LookbackWindows } from './lookback.js';
import { isUpToDate } from '../state/migrate.js';
import { createLeaderLock, type LeaderLock } from '../state/lock.js';
import { reclaimOrphanedLeases } from '../state/outbox.js';
import { ensureTenant, tenantOf } from '../state/tenant.js';
import { markCrashedRuns } from '../state/runs.js';
import { QuotaMeter, quotaFigures } from '../state/quota.js';
import { lookupSubject, recordLookup } from '../state/lookups.js';
import type { PipelineDeps } from './deps.js';

export interface Pipeline {
  readonly deps: PipelineDeps;
  readonly dbs: Databases;
  readonly lock: LeaderLock;
  close(): Promise<void>;
}

/** This process's identity in leases and the lock: host, pid and a random suffix. */
export function ownerId(): string {
  return `${os.hostname().slice(0, 40)}:${process.pid}:${crypto.randomBytes(3).toString('hex')}`;
}

/**
 * Wire the pipeline from the resolved configuration: databases, the Feishu client (one rate
 * limiter and one token cache for the whole process), the leader lock. Refuses to run on
 * state tables that are missing or not migrated to the latest version.
 */
export async function openPipeline(
  config: ResolvedConfig,
  logger: Logger,
  /**
   * `rateLimit` overrides feishu.rate_limit (Infinity: none), for benchmarks against the emulator.
   * `bindTenant` (default true): the lock holder binds an unbound state to the configured
   * Feishu tenant; false for commands that send nothing (they only compare).
   */
  opts: { metrics?: Metrics; poolMax?: number; rateLimit?: number; bindTenant?: boolean } = {},
): Promise<Pipeline> {
  const dbs = openDatabases(config, { poolMax: opts.poolMax ?? Math.max(4, Math.min(10, config.feishu.concurrency + 2)) });
  const tenant = tenantOf(config);
  try {
    if (!(await isUpToDate(dbs.state, config.state.table_prefix))) {
      throw new AppError('STATE_NOT_MIGRATED', 'the state tables are missing or out of date: run `npx attendance-sync migrate` first', { exitCode: ExitCode.USAGE });
    }
    // A state of another tenant: refuse before anything is read, planned or sent (exit 2).
    await ensureTenant(dbs.state, dbs.tables, tenant, { bind: false });
  } catch (err) {
    await dbs.close();
    throw err;
  }
  const quota = new QuotaMeter({
    db: dbs.state,
    t: dbs.tables,
    zone: config.feishu.time_zone,
    limit: config.feishu.monthly_quota ?? null,
    logger,
    onTotal: (f) => {
      opts.metrics?.quotaUsed.set(f.used);
      if (f.limit !== null) opts.metrics?.quotaLimit.set(f.limit);
    },
  });
  if (opts.metrics) {
    // The gauges show the month's count from the start, not only after this process's first call.
    const f = await quotaFigures(dbs.state, dbs.tables, { zone: config.feishu.time_zone, limit: config.feishu.monthly_quota ?? null }).catch(() => null);
    if (f) opts.metrics.quotaUsed.set(f.used);
    if (config.feishu.monthly_quota !== undefined) opts.metrics.quotaLimit.set(config.feishu.monthly_quota);
  }
  const client = new FeishuClient({
    baseUrl: config.feishu.base_url,
    appId: config.feishu.app_id,
    appSecret: config.feishu.app_secret,
    rateLimit: opts.rateLimit ?? config.feishu.rate_limit,
    timeoutMs: config.feishu.timeout_ms,
    maxAttempts: retryPolicyFromConfig(config.feishu).call.maxAttempts,
    timeZone: config.feishu.time_zone,
    logger,
    onSuccess: () => quota.record(),
    // What the console's record page shows; a lookup's outcome never depends on this write.
    onLookup: (l) => {
      recordLookup(dbs.state, dbs.tables, l).catch((err: unknown) => logger.warn('could not store a Feishu lookup', { subject: lookupSubject(l), error: err instanceof Error ? err.message : String(err) }));
    },
  });
  const owner = ownerId();
  const inner = createLeaderLock(dbs.state, dbs.tables, { owner, leaseMs: config.sync.lock_lease_seconds * 1000 });
  // Whoever takes the lock is the only sender: a crashed leader's claims are returned now.
  const lock: LeaderLock = {
    owner: inner.owner,
    async tryAcquire() {
      const got = await inner.tryAcquire();
      if (got) {
        // Compared again under the lock: a re-bind may have happened while this one waited.
        try {
          const { boundNow } = await ensureTenant(dbs.state, dbs.tables, tenant, { bind: opts.bindTenant !== false });
          if (boundNow) logger.info('state database bound to its Feishu tenant', { ...tenant });
        } catch (err) {
          await inner.release().catch(() => undefined);
          throw err;
        }
        const n = await reclaimOrphanedLeases(dbs.state, dbs.tables);
        if (n > 0) logger.warn('returned operations a previous worker left in flight', { count: n });
        const crashed = await markCrashedRuns(dbs.state, dbs.tables);
        if (crashed > 0) logger.warn('marked runs a previous worker left running as crashed', { count: crashed });
      }
      return got;
    },
    renew: () => inner.renew(),
    release: () => inner.release(),
  };
  const deps: PipelineDeps = {
    config,
    source: dbs.source,
    state: dbs.state,
    t: dbs.tables,
    client,
    logger,
    owner,
    lookback: new LookbackWindows(config.sync.lookback_seconds * 1000),
    metrics: opts.metrics,
    quota,
  };
  return {
    deps,
    dbs,
    lock,
    async close() {
      await quota.flush();
      await dbs.close();
    },
  };
}

export interface Databases {
  readonly source: Knex;
  /** The state DB; the same handle as `source` when both URLs are equal. */
  readonly state: Knex;
  readonly tables: StateTables;
  close(): Promise<void>;
}

/** Open the source and state databases (one pool when they are the same database). */
export function openDatabases(config: ResolvedConfig, opts: { poolMax?: number } = {}): Databases {
  const shared = config.state.url === config.source.url;
  // The source is only read: a SQLite source opens read-only and must exist (the state
  // database, when it is the same file, needs it writable).
  const source = connect(config.source.url, { poolMax: opts.poolMax ?? 4, role: shared ? 'source and state' : 'source', mustExist: true, readonly: !shared });
  let state: Knex;
  try {
    state = shared ? source : connect(config.state.url, { poolMax: opts.poolMax ?? 4, role: 'state' });
  } catch (err) {
    void source.destroy();
    throw err;
  }
  return {
    source,
    state,
    tables: stateTables(config.state.table_prefix),
    async close() {
      await source.destroy();
      if (state !== source) await state.destroy();
    },
  };
}

/** The sender of a pipeline: drains the outbox with the configured concurrency and retry policy. */
export function sender(deps: PipelineDeps): Sender {
  const f = deps.config.feishu;
  return new Sender({
    state: deps.state,
    t: deps.t,
    client: deps.client,
    employeeType: f.employee_type,
    namespace: deps.config.sync.namespace,
    owner: deps.owner,
    concurrency: f.concurrency,
    retry: retryPolicyFromConfig(f).operation,
    leaseMs: Math.max(60_000, f.timeout_ms * 6),
    logger: deps.logger,
    metrics: deps.metrics,
  });
}
