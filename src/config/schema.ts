import { z } from 'zod';
import { DateTime } from 'luxon';
import { cronExpression, leaveKindSchema, outKindSchema, overtimeKindSchema, timeZone, tripKindSchema } from './kindSchema.js';

/*
 * The configuration file's schema: one YAML document, validated once at start-up into a
 * `ResolvedConfig`. Every key carries a description; the README's configuration reference
 * is generated from these (`docs/configuration.md`, checked by a test) so it can't drift.
 *
 * Objects are strict: a misspelled key is an error that names its path, never silently ignored.
 */

export * from './kindSchema.js';

export const configSchema = z
  .strictObject({
    feishu: z
      .strictObject({
        app_id: z.string().min(1).describe('self-built app id (cli_…); env FEISHU_APP_ID overrides'),
        app_secret: z.string().min(1).describe('app secret; env FEISHU_APP_SECRET overrides; never logged'),
        base_url: z.url().default('https://open.feishu.cn').describe('open.feishu.cn, open.larksuite.com, or an emulator; env FEISHU_BASE_URL overrides'),
        employee_type: z
          .enum(['employee_id', 'employee_no', 'open_id'])
          .default('employee_id')
          .describe('which id kind user_id holds: employee_id (user ID), employee_no (工号) or open_id'),
        resolve_ttl_hours: z
          .number()
          .positive()
          .max(24 * 90)
          .default(24)
          .describe('how long a resolved (or unresolved) e-mail / mobile stays cached before it is asked again (fields.user_id with `resolve`)'),
        time_zone: timeZone.default('Asia/Shanghai').describe('attendance group time zone: Feishu wall-clock strings are written in it'),
        rate_limit: z.number().int().min(1).max(1000).default(50).describe('requests per second across all calls (Feishu allows 50)'),
        concurrency: z.number().int().min(1).max(100).default(8).describe('requests in flight at once'),
        timeout_ms: z.number().int().min(100).default(10_000).describe('per-request timeout'),
        call_max_attempts: z
          .number()
          .int()
          .min(1)
          .max(20)
          .default(4)
          .describe('tries of one Feishu call inside the client for transient errors (5xx, timeouts), short backoff; then the attempt of the operation has failed'),
        max_attempts: z.number().int().min(1).max(100).default(10).describe('attempts of one operation (across cycles, each one call of up to call_max_attempts tries) before it is marked dead'),
        retry_base_ms: z.number().int().min(10).default(2_000).describe('first delay before an operation is attempted again (exponential backoff with jitter)'),
        retry_max_ms: z.number().int().min(100).default(900_000).describe('cap of the delay between attempts of an operation'),
        monthly_quota: z
          .number()
          .int()
          .min(1)
          .optional()
          .describe("the tenant's monthly API call quota (Basic plan: 10,000); warns at 80 % of it; status and metrics show the calls used"),
      })
      .describe('the Feishu app'),
    source: z
      .strictObject({
        url: z.string().min(1).describe('postgres://…, mysql://… or sqlite:PATH; env SOURCE_DATABASE_URL overrides'),
        time_zone: timeZone
          .default('Asia/Shanghai')
          .describe('zone of zone-less source timestamps: local wall time (e.g. Asia/Shanghai) or UTC for UTC-stored systems'),
      })
      .describe('the legacy HR database (read only)'),
    state: z
      .strictObject({
        url: z.string().min(1).optional().describe('state database URL (default: source.url); env STATE_DATABASE_URL overrides'),
        table_prefix: z
          .string()
          .regex(/^[a-z_][a-z0-9_]{0,30}$/, { message: 'lower-case letters, digits and _ (at most 31)' })
          .default('attendance_sync_')
          .describe('prefix of the state tables'),
        retention_days: z
          .number()
          .int()
          .min(0)
          .default(90)
          .describe('runs and finished operations (superseded, invalid, revoked) older than this are deleted during cycles; sent creates are kept (0: keep everything)'),
      })
      .default({ table_prefix: 'attendance_sync_', retention_days: 90 })
      .describe('where the sync keeps its watermarks, sync table, runs and lock'),
    sync: z
      .strictObject({
        schedule: cronExpression.default('*/1 * * * *').describe('node-cron schedule of `run` (seconds field optional)'),
        page_size: z.number().int().min(1).max(10_000).default(500).describe('rows per keyset page'),
        lookback_seconds: z.number().int().min(0).default(600).describe('re-read window behind the watermark, for late commits'),
        future_margin_seconds: z
          .number()
          .int()
          .min(0)
          .default(300)
          .describe("rows whose cursor time is later than the source database's now() plus this are held back (the watermark stops before them) and reported"),
        namespace: z
          .string()
          .regex(/^[A-Za-z0-9]{1,12}$/, { message: '1–12 letters or digits' })
          .default('fas')
          .describe('idempotency namespace: part of every idempotent_id; never change it after going live'),
        rescan_window_days: z
          .union([z.number().int().min(0).max(400), z.literal('all')])
          .default(45)
          .describe('rescan compares records with effective dates in the last N days (0: off; all: every effective date, for small tables)'),
        rescan_schedule: cronExpression.default('17 3 * * *').describe('when `run` rescans (catches untrustworthy timestamps and hard deletes)'),
        reconcile_schedule: z
          .union([z.literal('0'), cronExpression])
          .default('43 2 * * *')
          .describe('when `run` reconciles the recent window with Feishu (`reconcile`); "0": never'),
        reconcile_window_days: z
          .number()
          .int()
          .min(1)
          .max(400)
          .default(7)
          .describe('the days up to today that the scheduled reconcile compares (one query call per 50 users and 29 days)'),
        reconcile_repair: z.boolean().default(true).describe('the scheduled reconcile repairs the drift it finds (through the outbox), as `reconcile --repair`'),
        max_revoke_fraction: z
          .number()
          .min(0)
          .max(1)
          .default(0.5)
          .describe('a rescan that finds more than this fraction of the records Feishu holds in its window gone from the source revokes nothing (an empty source?) unless `once --rescan --allow-mass-revoke`'),
        lock_lease_seconds: z.number().int().min(5).default(30).describe('leader lease; a standby takes over within lease + one poll'),
        shutdown_timeout_ms: z.number().int().min(500).default(8_000).describe('graceful shutdown deadline (pm2 kill_timeout must be larger)'),
        start_from: z
          .string()
          .refine((v) => v === 'now' || DateTime.fromISO(v, { zone: 'UTC' }).isValid, { message: 'must be now, a date (YYYY-MM-DD) or an ISO timestamp' })
          .optional()
          .describe(
            'where the first cycle of a kind without a watermark starts: now, a date (YYYY-MM-DD, midnight in the source zone) or an ISO timestamp; only rows changed at or after it are sent (history goes through `backfill`). Unset: the first cycle sends every row',
          ),
      })
      .default({
        schedule: '*/1 * * * *',
        page_size: 500,
        lookback_seconds: 600,
        future_margin_seconds: 300,
        namespace: 'fas',
        rescan_window_days: 45,
        rescan_schedule: '17 3 * * *',
        reconcile_schedule: '43 2 * * *',
        reconcile_window_days: 7,
        reconcile_repair: true,
        max_revoke_fraction: 0.5,
        lock_lease_seconds: 30,
        shutdown_timeout_ms: 8_000,
      })
      .describe('polling, paging and idempotency'),
    log: z
      .strictObject({
        level: z.enum(['error', 'warn', 'info', 'debug']).default('info').describe('log level'),
        format: z.enum(['auto', 'json', 'pretty']).default('auto').describe('auto: JSON unless stderr is a terminal (always JSON with NODE_ENV=production)'),
      })
      .default({ level: 'info', format: 'auto' })
      .describe('logging'),
    metrics: z
      .strictObject({
        enabled: z.boolean().default(false).describe('serve /metrics (Prometheus) and /healthz'),
        host: z.string().default('127.0.0.1').describe('listen address'),
        port: z.number().int().min(0).max(65535).default(9464).describe('listen port (0: any free port, logged at start)'),
        stale_after_seconds: z
          .number()
          .int()
          .min(10)
          .default(900)
          .describe('/healthz turns unhealthy when the leader has had no successful cycle for this long (make it several schedule intervals)'),
      })
      .default({ enabled: false, host: '127.0.0.1', port: 9464, stale_after_seconds: 900 })
      .describe('metrics and health endpoint'),
    console: z
      .strictObject({
        token: z
          .string()
          .min(16)
          .optional()
          .describe('enables the web console actions (POST /api/retry) for requests carrying Authorization: Bearer TOKEN; at least 16 characters; env ATTENDANCE_SYNC_CONSOLE_TOKEN overrides; never logged. Unset: the console is read-only'),
      })
      .default({})
      .describe('web console served on the metrics listener (GET /) when metrics.enabled'),
    kinds: z
      .strictObject({
        leave: leaveKindSchema.optional().describe('leave (请假) → user_approval.leaves'),
        overtime: overtimeKindSchema.optional().describe('overtime (加班) → user_approval.overtime_works'),
        trip: tripKindSchema.optional().describe('business trip (出差) → user_approval.trips'),
        out: outKindSchema.optional().describe('going out (外出) → user_approval.outs'),
      })
      .refine((k) => Object.values(k).some((v) => v !== undefined), { message: 'configure at least one of leave, overtime, trip, out' })
      .describe('one section per record kind'),
  })
  .describe('attendance-sync configuration');

export type RawConfig = z.input<typeof configSchema>;
export type ParsedConfig = z.output<typeof configSchema>;
