import { z } from 'zod';

/*
 * The Feishu attendance request shapes, defined once (feishu-api.md §4, §5). The mapper
 * validates what it builds with them before anything is sent, and the emulator validates
 * what it receives with the very same schemas: one source of truth for the contract.
 *
 * Unknown fields are ignored, as Feishu ignores them; the system-generated process-id
 * fields are accepted and ignored.
 */

export const WALL_CLOCK_RE = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/;
export const YMD_RE = /^(\d{4})(\d{2})(\d{2})$/;

function realDate(y: number, m: number, d: number): boolean {
  const dt = new Date(Date.UTC(y, m - 1, d));
  return dt.getUTCFullYear() === y && dt.getUTCMonth() === m - 1 && dt.getUTCDate() === d;
}

/** `yyyy-MM-dd HH:mm:ss` that names a real calendar time (no Feb 30, no 24:00). */
export function isWallClock(v: string): boolean {
  const m = WALL_CLOCK_RE.exec(v);
  if (!m) return false;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  return realDate(y, mo, d) && h < 24 && mi < 60 && s < 60;
}

/** `yyyyMMdd` that names a real date. */
export function isYmd(v: string): boolean {
  const m = YMD_RE.exec(v);
  if (!m) return false;
  const [y, mo, d] = m.slice(1).map(Number) as [number, number, number];
  return realDate(y, mo, d);
}

export const wallClock = z.string().refine(isWallClock, { message: 'must be a real time as "yyyy-MM-dd HH:mm:ss"' });
export const ymd = z.string().refine(isYmd, { message: 'must be a real date as "yyyyMMdd"' });

export const EMPLOYEE_TYPES = Object.freeze(['employee_id', 'employee_no', 'open_id'] as const);
export const employeeTypeSchema = z.enum(EMPLOYEE_TYPES);
export type EmployeeType = z.infer<typeof employeeTypeSchema>;

export const unitSchema = z.union([z.literal(1), z.literal(2), z.literal(3), z.literal(4)], { message: 'must be 1 (day), 2 (hour), 3 (half-day) or 4 (half-hour)' });
export const localeSchema = z.enum(['ch', 'en', 'ja']);
export const i18nNamesSchema = z.looseObject({
  ch: z.string().optional(),
  en: z.string().optional(),
  ja: z.string().optional(),
});
const processIds = {
  correct_process_id: z.array(z.string()).optional(),
  cancel_process_id: z.array(z.string()).optional(),
  process_id: z.array(z.string()).optional(),
};
const idempotentId = z.string().min(1, { message: 'must not be empty' }).max(64, { message: 'at most 64 characters' }).optional();
const requiredText = z.string().min(1, { message: 'must not be empty' });
const interval = z.number().int({ message: 'must be a whole number of seconds' }).nonnegative({ message: 'must be ≥ 0' });

/** The time-span rule shared by every item: end_time not before start_time. */
function spanRule<T extends { start_time: string; end_time: string }>(item: T, ctx: z.RefinementCtx): void {
  if (isWallClock(item.start_time) && isWallClock(item.end_time) && item.end_time < item.start_time) {
    ctx.addIssue({ code: 'custom', path: ['end_time'], message: 'must not be before start_time' });
  }
}

function localeRule(item: { i18n_names: Record<string, unknown>; default_locale: string }, ctx: z.RefinementCtx): void {
  const name = item.i18n_names[item.default_locale];
  if (typeof name !== 'string' || name.trim() === '') {
    ctx.addIssue({ code: 'custom', path: ['i18n_names', item.default_locale], message: 'the default_locale name must be present and not empty' });
  }
}

function uniqIdSchema(strict: boolean, required: boolean) {
  let s = z.string().min(1, { message: 'must not be empty' });
  if (strict) s = s.max(13, { message: 'must be shorter than 14 characters' });
  return required ? s : s.optional();
}

export interface SchemaOptions {
  /** Enforce the documented `uniq_id` length < 14 (the documentation's own sample breaks it). */
  readonly strict: boolean;
}

function leaveLike(opts: SchemaOptions, uniqRequired: boolean) {
  return z
    .looseObject({
      uniq_id: uniqIdSchema(opts.strict, uniqRequired),
      unit: unitSchema,
      interval,
      start_time: wallClock,
      end_time: wallClock,
      i18n_names: i18nNamesSchema,
      default_locale: localeSchema,
      reason: requiredText,
      idempotent_id: idempotentId,
      ...processIds,
    })
    .superRefine((item, ctx) => {
      spanRule(item, ctx);
      localeRule(item, ctx);
    });
}

export const leaveItemSchema = (opts: SchemaOptions) => leaveLike(opts, false);
export const outItemSchema = (opts: SchemaOptions) => leaveLike(opts, true);

export const overtimeItemSchema = z
  .looseObject({
    duration: z.number().nonnegative({ message: 'must be ≥ 0' }),
    unit: unitSchema,
    category: z.union([z.literal(1), z.literal(2), z.literal(3)], { message: 'must be 1 (workday), 2 (rest day) or 3 (public holiday)' }),
    type: z.union([z.literal(0), z.literal(1), z.literal(2)], { message: 'must be 0 (record only), 1 (time off in lieu) or 2 (overtime pay)' }),
    start_time: wallClock,
    end_time: wallClock,
    reason: z.string().optional(),
    idempotent_id: idempotentId,
    ...processIds,
  })
  .superRefine(spanRule);

const region = z.looseObject({
  region_level: z.enum(['l1', 'l2', 'l3', 'l4']).optional(),
  region_id: z.string().optional(),
});

export const tripItemSchema = z
  .looseObject({
    start_time: wallClock,
    end_time: wallClock,
    reason: requiredText,
    approve_pass_time: wallClock,
    approve_apply_time: wallClock,
    idempotent_id: idempotentId,
    ...processIds,
    departure: region.optional(),
    destinations: z.array(region).optional(),
    transportation: z
      .array(z.union([1, 2, 3, 4, 5, 6].map((n) => z.literal(n)) as unknown as [z.ZodLiteral<1>, z.ZodLiteral<2>], { message: 'must be 1–6' }))
      .optional(),
    trip_type: z.union([z.literal(1), z.literal(2)], { message: 'must be 1 (one-way) or 2 (round trip)' }).optional(),
    remarks: z.string().optional(),
  })
  .superRefine(spanRule);

export function userApprovalSchema(opts: SchemaOptions) {
  return z
    .looseObject({
      user_id: requiredText,
      date: ymd,
      leaves: z.array(leaveItemSchema(opts)).optional(),
      outs: z.array(outItemSchema(opts)).optional(),
      overtime_works: z.array(overtimeItemSchema).optional(),
      trips: z.array(tripItemSchema).optional(),
      time_zone: z.string().optional(),
    })
    .superRefine((ua, ctx) => {
      const n = (ua.leaves?.length ?? 0) + (ua.outs?.length ?? 0) + (ua.overtime_works?.length ?? 0) + (ua.trips?.length ?? 0);
      if (n === 0) ctx.addIssue({ code: 'custom', message: 'needs at least one item in leaves, outs, overtime_works or trips' });
    });
}

export function createUserApprovalBodySchema(opts: SchemaOptions) {
  return z.looseObject({ user_approval: userApprovalSchema(opts) });
}

export type I18nNames = z.infer<typeof i18nNamesSchema>;
export type LeaveItem = z.infer<ReturnType<typeof leaveItemSchema>>;
export type OutItem = z.infer<ReturnType<typeof outItemSchema>>;
export type OvertimeItem = z.infer<typeof overtimeItemSchema>;
export type TripItem = z.infer<typeof tripItemSchema>;
export type UserApproval = z.infer<ReturnType<typeof userApprovalSchema>>;
export type CreateUserApprovalBody = z.infer<ReturnType<typeof createUserApprovalBodySchema>>;

export interface FieldViolation {
  /** e.g. `user_approval.leaves[0].start_time` */
  readonly field: string;
  readonly description: string;
}

export function fieldPath(path: ReadonlyArray<PropertyKey>): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`)).join('');
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_type' && /received undefined/.test(issue.message)) return 'is required';
  return issue.message;
}

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; violations: FieldViolation[] };

// Built once per reading of the uniq_id rule: building a zod schema costs far more than using it.
const bodySchemas = { strict: createUserApprovalBodySchema({ strict: true }), lenient: createUserApprovalBodySchema({ strict: false }) };
const approvalSchemas = { strict: userApprovalSchema({ strict: true }), lenient: userApprovalSchema({ strict: false }) };

/** Validate a create body; every problem is reported with the field's full path. */
export function validateCreateBody(body: unknown, opts: SchemaOptions): ValidationResult<CreateUserApprovalBody> {
  const r = bodySchemas[opts.strict ? 'strict' : 'lenient'].safeParse(body);
  if (r.success) return { ok: true, value: r.data };
  return { ok: false, violations: r.error.issues.map((i) => ({ field: fieldPath(i.path) || '(body)', description: describeIssue(i) })) };
}

/** Validate one `user_approval` object (the mapper's check before sending). */
export function validateUserApproval(ua: unknown, opts: SchemaOptions): ValidationResult<UserApproval> {
  const r = approvalSchemas[opts.strict ? 'strict' : 'lenient'].safeParse(ua);
  if (r.success) return { ok: true, value: r.data };
  return { ok: false, violations: r.error.issues.map((i) => ({ field: fieldPath(i.path) || '(user_approval)', description: describeIssue(i) })) };
}

// Query and process (§5).
export const queryBodySchema = z.looseObject({
  user_ids: z.array(z.string().min(1)).min(1, { message: 'must list at least one user' }),
  check_date_from: z.number().int(),
  check_date_to: z.number().int(),
  check_date_type: z.enum(['PeriodTime', 'CreateTime', 'UpdateTime']).optional(),
  status: z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(3), z.literal(4)]).optional(),
  check_time_from: z.string().optional(),
  check_time_to: z.string().optional(),
});
export type QueryUserApprovalsBody = z.infer<typeof queryBodySchema>;

export const APPROVAL_TYPES = Object.freeze(['leave', 'out', 'overtime', 'trip', 'remedy'] as const);
export const processBodySchema = z.looseObject({
  approval_id: requiredText,
  approval_type: z.enum(APPROVAL_TYPES),
  status: z.union([z.literal(1), z.literal(2), z.literal(4)], { message: 'must be 1 (reject), 2 (approve) or 4 (revoke)' }),
});
export type ProcessApprovalBody = z.infer<typeof processBodySchema>;
