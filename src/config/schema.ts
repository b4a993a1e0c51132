import { z } from 'zod';
import { DateTime, IANAZone } from 'luxon';
import cron from 'node-cron';

/*
 * The configuration file's schema: one YAML document, validated once at start-up into a
 * `ResolvedConfig`. Every key carries a description; the README's configuration reference
 * is generated from these (`docs/configuration.md`, checked by a test) so it can't drift.
 *
 * Objects are strict: a misspelled key is an error that names its path, never silently ignored.
 */

const timeZone = z
  .string()
  .refine((v) => IANAZone.isValidZone(v), { message: 'not a known IANA time zone (e.g. Asia/Shanghai, UTC)' });

const cronExpression = z
  .string()
  .refine((v) => cron.validate(v), { message: 'not a valid cron expression (e.g. "*/1 * * * *")' });

/** A column name, or `schema.table` style qualified name: letters, digits, underscores, dots. */
const columnName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_$]*$/, { message: 'must be a plain column name (letters, digits, underscore)' });

const tableName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$/, { message: 'must be a table name, optionally schema-qualified (hr.leave_requests)' });

const scalar = z.union([z.string(), z.number(), z.boolean()]);

/**
 * Where a field's value comes from. Shorthand: a column name. Long form:
 * `{ column, map, default }` or `{ value }` for a constant.
 */
export const fieldSpecSchema = z.union([
  columnName.describe('column name'),
  z
    .strictObject({
      column: columnName.optional().describe('source column to read'),
      value: scalar.optional().describe('constant value used for every row'),
      map: z.record(z.string(), scalar).optional().describe('value map: source value (as text) → value sent'),
      default: scalar.optional().describe('used when the column is NULL or empty'),
    })
    .refine((f) => f.column !== undefined || f.value !== undefined, { message: 'needs `column` or `value`' }),
]);
export type FieldSpec = z.infer<typeof fieldSpecSchema>;

const durationUnit = z.enum(['seconds', 'minutes', 'hours', 'days', 'half_days']);

/** A duration read from a column (or constant) with its unit. */
export const durationSpecSchema = z
  .strictObject({
    column: columnName.optional().describe('column holding the duration'),
    value: z.number().nonnegative().optional().describe('constant duration'),
    unit: durationUnit.default('hours').describe('unit of the column: seconds, minutes, hours, days, half_days'),
    hours_per_day: z.number().positive().max(24).default(8).describe('working hours in a day, for days and half_days'),
  })
  .refine((f) => f.column !== undefined || f.value !== undefined, { message: 'needs `column` or `value`' });
export type DurationSpec = z.infer<typeof durationSpecSchema>;

const locale = z.enum(['ch', 'en', 'ja']);

/** One legacy type code → the Feishu leave / out type. */
export const typeMappingSchema = z
  .strictObject({
    uniq_id: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,13}$/, { message: 'must be 1–13 ASCII letters, digits, _ or - (Feishu: "length < 14")' })
      .describe('Feishu type id (stable, < 14 characters)'),
    names: z
      .strictObject({
        ch: z.string().min(1).optional().describe('Chinese name'),
        en: z.string().min(1).optional().describe('English name'),
        ja: z.string().min(1).optional().describe('Japanese name'),
      })
      .describe('display names (i18n_names)'),
    default_locale: locale.default('ch').describe('language Feishu falls back to; its name must be set'),
  })
  .refine((t) => Boolean(t.names[t.default_locale]), { message: 'names must include the default_locale name', path: ['names'] });
export type TypeMapping = z.infer<typeof typeMappingSchema>;

const sourceSpec = z
  .strictObject({
    table: tableName.optional().describe('source table (or view)'),
    query: z
      .string()
      .min(1)
      .optional()
      .describe('a SELECT (joins allowed); the worker wraps it as a subquery and applies its own filters through bindings'),
  })
  .refine((s) => (s.table === undefined) !== (s.query === undefined), { message: 'set exactly one of `table` or `query`' });

const cursorSpec = z
  .strictObject({
    mode: z
      .enum(['updated_at', 'id'])
      .default('updated_at')
      .describe('updated_at: keyset on (column, key); id: insert-only tables, keyset on key (use with rescan)'),
    column: columnName.optional().describe('the change-timestamp column (mode updated_at)'),
    lookback_ids: z
      .number()
      .int()
      .min(0)
      .max(100_000)
      .optional()
      .describe('mode id: the last N keys up to the watermark are read again each poll, for ids that commit out of order (default 100; 0: off; sync.lookback_seconds: 0 turns it off too)'),
  })
  .refine((c) => c.mode === 'id' || c.column !== undefined, { message: 'mode updated_at needs `column`', path: ['column'] });

const statusRule = z
  .strictObject({
    column: columnName.describe('approval status column'),
    approved: z.array(scalar).min(1).describe('values meaning approved: the record belongs in Feishu'),
    revoked: z
      .array(scalar)
      .optional()
      .describe('values meaning cancelled / rejected / withdrawn; any other value is treated as not approved'),
  })
  .describe('cancellation rule: a record in Feishu whose status leaves `approved` is revoked');

const deletedRule = z
  .strictObject({
    column: columnName.describe('soft-delete column'),
    values: z.array(scalar).optional().describe('values meaning deleted; without it, any non-NULL value means deleted'),
  })
  .describe('soft delete: a deleted record is revoked');

const commonKind = {
  enabled: z.boolean().default(true).describe('sync this kind'),
  source: sourceSpec.describe('where the rows come from'),
  key: columnName.describe('unique source key column (also the keyset tie-breaker)'),
  cursor: cursorSpec.default({ mode: 'updated_at', column: 'updated_at' }).describe('how new and changed rows are found'),
  effective_date: columnName.optional().describe('date column for backfill and rescan windows (default: the start_time column)'),
  time_zone: timeZone.optional().describe('zone of this source\'s zone-less timestamps (default source.time_zone)'),
  status: statusRule.optional(),
  deleted: deletedRule.optional(),
};

/**
 * `fields.user_id`: a column (or constant) holding Feishu's user id, or, with `resolve`, an
 * e-mail or mobile column the worker resolves through Feishu's contact API.
 */
export const userIdSpecSchema = z.union([
  columnName.describe('column name'),
  z
    .strictObject({
      column: columnName.optional().describe('source column to read'),
      value: scalar.optional().describe('constant value used for every row'),
      map: z.record(z.string(), scalar).optional().describe('value map: source value (as text) → value sent'),
      default: scalar.optional().describe('used when the column is NULL or empty'),
      resolve: z
        .enum(['email', 'mobile'])
        .optional()
        .describe('the column holds an e-mail or a mobile number: resolved to the Feishu user id (contact/v3/users/batch_get_id, cached for feishu.resolve_ttl_hours)'),
    })
    .refine((f) => f.column !== undefined || f.value !== undefined, { message: 'needs `column` or `value`' }),
]);
export type UserIdSpec = z.infer<typeof userIdSpecSchema>;

const userAndSpan = {
  user_id: userIdSpecSchema.describe('Feishu user id (per feishu.employee_type), or an e-mail / mobile column with `resolve`'),
  start_time: fieldSpecSchema.describe('start timestamp'),
  end_time: fieldSpecSchema.describe('end timestamp'),
};

const leaveLikeFields = z.strictObject({
  ...userAndSpan,
  type: fieldSpecSchema.describe('legacy type code, looked up in `types`'),
  unit: fieldSpecSchema.default({ value: 1 }).describe('Feishu unit: 1 day, 2 hour, 3 half-day, 4 half-hour (map legacy codes with `map`)'),
  interval: durationSpecSchema.optional().describe('duration sent as `interval` seconds (default: end − start)'),
  reason: fieldSpecSchema.describe('reason (required by Feishu: give a `default` for empty values)'),
});

const typesMap = z.record(z.string(), typeMappingSchema).refine((m) => Object.keys(m).length > 0, { message: 'at least one type' });

const typesQuery = z
  .string()
  .min(1)
  .describe(
    'a SELECT returning the type table: `code`, names per locale (`name_ch`, `name_en`, `name_ja`, or `names` as a JSON object such as {"en_US": …, "zh_CN": …}), optionally `uniq_id` and `default_locale`; entries of `types` override its rows; a code without uniq_id gets one derived from it (kept in the state DB)',
  );

const needsTypes = (k: { types?: unknown; types_query?: unknown }) => k.types !== undefined || k.types_query !== undefined;
const needsTypesMessage = { message: 'set `types`, `types_query` or both', path: ['types'] };

export const leaveKindSchema = z
  .strictObject({
    ...commonKind,
    fields: leaveLikeFields.describe('column mapping'),
    types: typesMap.optional().describe('legacy type code → Feishu leave type'),
    types_query: typesQuery.optional(),
  })
  .refine(needsTypes, needsTypesMessage);

export const outKindSchema = z
  .strictObject({
    ...commonKind,
    fields: leaveLikeFields.describe('column mapping'),
    types: typesMap.optional().describe('legacy type code → Feishu out type'),
    types_query: typesQuery.optional(),
  })
  .refine(needsTypes, needsTypesMessage);

export const overtimeKindSchema = z.strictObject({
  ...commonKind,
  fields: z
    .strictObject({
      ...userAndSpan,
      unit: fieldSpecSchema.default({ value: 2 }).describe('Feishu unit: 1 day, 2 hour, 3 half-day, 4 half-hour'),
      category: fieldSpecSchema.describe('1 workday, 2 rest day, 3 public holiday'),
      type: fieldSpecSchema.describe('0 record only, 1 time off in lieu, 2 overtime pay'),
      duration: durationSpecSchema.optional().describe('duration sent as `duration` (in `unit`s; default: end − start)'),
      reason: fieldSpecSchema.optional().describe('reason (optional for overtime)'),
    })
    .describe('column mapping'),
});

export const tripKindSchema = z.strictObject({
  ...commonKind,
  fields: z
    .strictObject({
      ...userAndSpan,
      reason: fieldSpecSchema.describe('reason (required by Feishu: give a `default` for empty values)'),
      approve_pass_time: fieldSpecSchema.describe('when the approval passed (timestamp)'),
      approve_apply_time: fieldSpecSchema.describe('when it was applied for (timestamp)'),
      departure_region_level: fieldSpecSchema.optional().describe('l1 country, l2 province, l3 city, l4 district'),
      departure_region_id: fieldSpecSchema.optional().describe('Feishu region id of the departure'),
      destination_region_level: fieldSpecSchema.optional().describe('region level of the destinations'),
      destination_region_ids: fieldSpecSchema.optional().describe('Feishu region ids of the destinations, comma-separated'),
      transportation: fieldSpecSchema.optional().describe('1 plane, 2 train, 3 car, 4 high-speed rail, 5 ship, 6 other; comma-separated list'),
      trip_type: fieldSpecSchema.optional().describe('1 one-way, 2 round trip'),
      remarks: fieldSpecSchema.optional().describe('remarks'),
    })
    .describe('column mapping'),
});

export type LeaveKindConfig = z.infer<typeof leaveKindSchema>;
export type OutKindConfig = z.infer<typeof outKindSchema>;
export type OvertimeKindConfig = z.infer<typeof overtimeKindSchema>;
export type TripKindConfig = z.infer<typeof tripKindSchema>;
export type AnyKindConfig = LeaveKindConfig | OutKindConfig | OvertimeKindConfig | TripKindConfig;

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
