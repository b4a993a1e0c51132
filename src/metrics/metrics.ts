import http from 'node:http';
import client from 'prom-client';
import { sanitizeErrorText } from '../log/redact.js';

/**
 * Prometheus metrics of one worker process. One registry per process (not the global one),
 * so tests can create several workers side by side.
 */
export class Metrics {
  readonly registry = new client.Registry();

  readonly records = new client.Counter({
    name: 'attendance_sync_records_total',
    help: 'Source records processed, by kind and planning outcome (created, revoked, unchanged, invalid, inactive, future: held back, revokesRefused)',
    labelNames: ['kind', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly operations = new client.Counter({
    name: 'attendance_sync_operations_total',
    help: 'Outbox operations finished, by kind, operation and status (sent, retry, failed, dead)',
    labelNames: ['kind', 'operation', 'status'] as const,
    registers: [this.registry],
  });

  readonly sendLatency = new client.Histogram({
    name: 'attendance_sync_send_duration_seconds',
    help: 'Duration of one Feishu operation including retries inside the client',
    labelNames: ['operation'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers: [this.registry],
  });

  readonly limiterWait = new client.Counter({
    name: 'attendance_sync_rate_limiter_wait_seconds_total',
    help: 'Time calls spent waiting for the shared rate limiter',
    registers: [this.registry],
  });

  readonly rateLimited = new client.Counter({
    name: 'attendance_sync_feishu_rate_limited_total',
    help: 'HTTP 429 / code 99991400 answers received from Feishu',
    registers: [this.registry],
  });

  readonly retries = new client.Counter({
    name: 'attendance_sync_feishu_retries_total',
    help: 'Feishu calls tried again inside the client (the call layer of the retry policy; an operation attempted again later counts in operations_total{status="retry"})',
    registers: [this.registry],
  });

  readonly outboxDepth = new client.Gauge({
    name: 'attendance_sync_outbox_depth',
    help: 'Operations waiting to be sent (pending or sending)',
    registers: [this.registry],
  });

  readonly oldestPendingAge = new client.Gauge({
    name: 'attendance_sync_oldest_pending_age_seconds',
    help: 'Age of the oldest pending operation (0 when none)',
    registers: [this.registry],
  });

  readonly watermarkLag = new client.Gauge({
    name: 'attendance_sync_watermark_lag_seconds',
    help: 'Now minus the watermark of each kind (timestamp cursors only); negative when the watermark is ahead of the clock',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly futureRows = new client.Gauge({
    name: 'attendance_sync_future_rows',
    help: "Rows the last cycle held back because their cursor time is beyond the source database's clock",
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly lastSuccess = new client.Gauge({
    name: 'attendance_sync_last_successful_cycle_timestamp_seconds',
    help: 'Unix time of the last cycle that finished without failures',
    registers: [this.registry],
  });

  readonly cycleDuration = new client.Histogram({
    name: 'attendance_sync_cycle_duration_seconds',
    help: 'Duration of a sync cycle',
    buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900],
    registers: [this.registry],
  });

  readonly stageSeconds = new client.Counter({
    name: 'attendance_sync_stage_seconds_total',
    help: 'Time spent per pipeline stage (extract, map, plan, send)',
    labelNames: ['stage'] as const,
    registers: [this.registry],
  });

  readonly quotaUsed = new client.Gauge({
    name: 'attendance_sync_feishu_quota_used',
    help: "successful Feishu calls this worker made in the current calendar month (what Feishu's monthly quota counts)",
    registers: [this.registry],
  });

  readonly quotaLimit = new client.Gauge({
    name: 'attendance_sync_feishu_quota_limit',
    help: 'feishu.monthly_quota (absent when not configured)',
    registers: [this.registry],
  });

  readonly drift = new client.Counter({
    name: 'attendance_sync_drift_total',
    help: 'Drift reconcile found between Feishu and the sync table, by kind and type (missing-in-feishu, revoked-in-feishu, active-in-feishu, differs, foreign)',
    labelNames: ['kind', 'type'] as const,
    registers: [this.registry],
  });

  readonly leader = new client.Gauge({
    name: 'attendance_sync_leader',
    help: '1 while this process holds the leader lock',
    registers: [this.registry],
  });

  constructor() {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'attendance_sync_' });
  }
}

export interface Health {
  ok: boolean;
  [key: string]: unknown;
}

/** What `/healthz` judges: the worker's role and the last cycles it ran. */
export interface HealthInput {
  readonly state: string;
  readonly startedAt: number;
  /** End of the last cycle that ran without a failure or a halt (null: none yet). */
  readonly lastGoodCycleAt: number | null;
  /** The last cycle's outcome and error (null: none yet). */
  readonly lastCycle: { readonly at: number; readonly outcome: string; readonly halted: number; readonly haltReason?: string | undefined; readonly error?: string | undefined } | null;
  readonly staleAfterMs: number;
  readonly now?: number;
}

/**
 * Healthy when this process is a standby waiting for the lock, or the leader whose last cycle
 * went through (no database or Feishu failure, sending not halted by an auth or quota error)
 * and whose last good cycle is more recent than `staleAfterMs` (a fresh leader gets that long
 * for its first). Records Feishu refused one by one (`failed`, `dead`) do not make the process
 * unhealthy: they are data problems, visible in `status` and the records metric.
 */
export function judgeHealth(h: HealthInput): Health {
  const now = h.now ?? Date.now();
  const reasons: string[] = [];
  const lastError = h.lastCycle?.error === undefined ? undefined : sanitizeErrorText(h.lastCycle.error);
  if (h.state === 'leader') {
    const since = h.lastGoodCycleAt ?? h.startedAt;
    if (now - since > h.staleAfterMs) reasons.push(`no successful cycle for ${Math.round((now - since) / 1000)} s`);
    if (h.lastCycle?.outcome === 'failed') reasons.push(`last cycle failed: ${lastError ?? 'unknown error'}`);
    if (h.lastCycle && h.lastCycle.halted > 0) reasons.push(h.lastCycle.haltReason ? `sending halted: ${sanitizeErrorText(h.lastCycle.haltReason)}` : 'sending halted (Feishu auth or quota error)');
  } else if (h.state !== 'waiting') {
    reasons.push(`worker is ${h.state}`);
  }
  return {
    ok: reasons.length === 0,
    state: h.state,
    lastGoodCycleAt: h.lastGoodCycleAt === null ? null : new Date(h.lastGoodCycleAt).toISOString(),
    lastCycle: h.lastCycle ? { ...h.lastCycle, at: new Date(h.lastCycle.at).toISOString(), ...(lastError === undefined ? {} : { error: lastError }) } : null,
    ...(reasons.length > 0 ? { reasons } : {}),
  };
}

/**
 * Limits of the metrics listener. It shares the process's file descriptors with the
 * worker's Feishu and database connections, so a scraper that opens many connections, or
 * one that sends half a request and waits, must not use them up: Node's defaults hold an
 * unfinished request for 60 s (headers) to 300 s (whole request) with no connection cap.
 */
export const METRICS_LISTENER_LIMITS = Object.freeze({
  maxConnections: 32,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  /** How often Node looks for requests past their timeouts (default 30 s). */
  checkIntervalMs: 1_000,
});

/**
 * `/metrics` (Prometheus text format) and `/healthz` (200 when healthy, 503 otherwise,
 * JSON body with the details). Returns the server; close it on shutdown.
 */
export async function startMetricsServer(opts: {
  host: string;
  port: number;
  metrics: Metrics;
  health: () => Health | Promise<Health>;
  /** Further routes (the web console): answers and returns true, or false for a path it does not serve. */
  console?: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<boolean>;
}): Promise<http.Server & { url: string }> {
  const limits = METRICS_LISTENER_LIMITS;
  const serverOptions: http.ServerOptions = {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: limits.checkIntervalMs,
  };
  const server = http.createServer(serverOptions, (req, res) => {
    void (async () => {
      try {
        if (req.url === '/metrics') {
          res.writeHead(200, { 'content-type': opts.metrics.registry.contentType });
          res.end(await opts.metrics.registry.metrics());
        } else if (req.url === '/healthz') {
          const h = await opts.health();
          res.writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json' });
          res.end(JSON.stringify(h));
        } else if (!(await opts.console?.(req, res))) {
          res.writeHead(404, { 'content-type': 'text/plain' });
          res.end('not found: try /metrics or /healthz\n');
        }
      } catch (err) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`error: ${sanitizeErrorText((err as Error).message)}\n`);
      }
    })();
  });
  // Connections beyond the cap are closed as they arrive.
  server.maxConnections = limits.maxConnections;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  return Object.assign(server, { url: `http://${opts.host}:${port}` });
}
