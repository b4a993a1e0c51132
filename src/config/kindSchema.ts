import { z } from 'zod';
import { IANAZone } from 'luxon';
import cron from 'node-cron';

/* The schema of one kind's section (kinds.leave, kinds.overtime, …) and the value types they share with the rest of the file. */

export const timeZone = z
  .string()
  .refine((v) => IANAZone.isValidZone(v), { message: 'not a known IANA time zone (e.g. Asia/Shanghai, UTC)' });

export const cronExpression = z
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
/** The object form of a field: a column or a constant, with a value map and a default. */
const fieldObject = {
  column: columnName.optional().describe('source column to read'),
  value: scalar.optional().describe('constant value used for every row'),
  map: z.record(z.string(), scalar).optional().describe('value map: source value (as text) → value sent'),
  default: scalar.optional().describe('used when the column is NULL or empty'),
};
const needsColumnOrValue = (f: { column?: unknown; value?: unknown }) => f.column !== undefined || f.value !== undefined;
const needsColumnOrValueMessage = { message: 'needs `column` or `value`' };

export const fieldSpecSchema = z.union([columnName.describe('column name'), z.strictObject(fieldObject).refine(needsColumnOrValue, needsColumnOrValueMessage)]);
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
  .refine(needsColumnOrValue, needsColumnOrValueMessage);
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
      ...fieldObject,
      resolve: z
        .enum(['email', 'mobile'])
        .optional()
        .describe('the column holds an e-mail or a mobile number: resolved to the Feishu user id (contact/v3/users/batch_get_id, cached for feishu.resolve_ttl_hours)'),
    })
    .refine(needsColumnOrValue, needsColumnOrValueMessage),
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
