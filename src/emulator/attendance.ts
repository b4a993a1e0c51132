import { DateTime } from 'luxon';
import { KIND_APPROVAL_TYPE } from '../kinds.js';
import { employeeTypeSchema, fieldPath, processBodySchema, queryBodySchema, validateCreateBody } from '../feishu/schema.js';
import { ARRAY_KIND, type Ledger, type LedgerEntry } from './ledger.js';
import type { EmulatorOptions } from './options.js';
import { fail, ok, type Answer, type EmulatorStats } from './answers.js';
import { knownUser } from './contact.js';

/* The emulated attendance endpoints: user_approvals create and query, approval processing. */

/** What the endpoints read from the server: its records, options, clock and counters (live). */
export interface AttendanceHost {
  readonly ledger: Ledger;
  readonly opts: EmulatorOptions;
  readonly stats: EmulatorStats;
  now(): number;
}

export class AttendanceEndpoints {
  constructor(private readonly host: AttendanceHost) {}

  // --- create ----------------------------------------------------------------------------------

  private violation(field: string, description: string): Answer {
    this.host.stats.validationErrors++;
    return fail(400, 1220001, `param invalid: ${field} ${description}`, {
      error: { field_violations: [{ field, value: '', description }] },
    });
  }

  create(url: URL, body: unknown): Answer {
    const et = url.searchParams.get('employee_type');
    if (!employeeTypeSchema.safeParse(et).success) return this.violation('employee_type', 'employee_type invalid (employee_id, employee_no or open_id)');
    const v = validateCreateBody(body, { strict: this.host.opts.strict });
    if (!v.ok) {
      this.host.stats.validationErrors++;
      const first = v.violations[0]!;
      return fail(400, 1220001, `param invalid: ${first.field} ${first.description}`, {
        error: { field_violations: v.violations.map((x) => ({ field: x.field, value: '', description: x.description })) },
      });
    }
    const ua = (body as { user_approval: Record<string, unknown> }).user_approval;
    if (this.host.opts.i18nNamesRequired) {
      // The old Lark page marks ch, en and ja all required.
      for (const arr of ['leaves', 'outs']) {
        const list = (ua[arr] as Array<Record<string, unknown>> | undefined) ?? [];
        for (const [i, item] of list.entries()) {
          const names = (item.i18n_names ?? {}) as Record<string, unknown>;
          for (const locale of ['ch', 'en', 'ja']) {
            if (typeof names[locale] !== 'string' || names[locale] === '') return this.violation(`user_approval.${arr}[${i}].i18n_names.${locale}`, 'is required');
          }
        }
      }
    }
    const userId = String(ua.user_id);
    const date = String(ua.date);
    if (!knownUser(this.host.opts, userId)) return fail(400, 1220004, 'user_id is not exist or does not have permission');
    if (this.host.opts.sealedUntil && date < this.host.opts.sealedUntil) {
      return fail(400, 1220600, 'the attendance result has been sealed and can not modify');
    }
    const items: Array<{ arr: string; item: Record<string, unknown> }> = [];
    for (const arr of Object.keys(ARRAY_KIND)) {
      for (const item of (ua[arr] as Array<Record<string, unknown>> | undefined) ?? []) items.push({ arr, item });
    }
    const keys = items.map((i) => i.item.idempotent_id).filter((k): k is string => typeof k === 'string');
    for (const k of keys) this.host.ledger.countPost(k);
    const dup = keys.map((k) => this.host.ledger.findIdempotent(k)).find((x) => x !== undefined);
    if (dup) {
      this.host.stats.duplicates++;
      if (this.host.opts.duplicateIdempotentId === 'replay') return { status: 200, body: dup.response };
      if (this.host.opts.duplicateIdempotentId === 'conflict-with-data') {
        // The existing record, as Feishu People's leave_granting_records answers 1160010.
        return fail(400, 1220600, 'the object already exists', { data: (dup.response as { data?: unknown }).data });
      }
      return fail(400, 1220600, 'the object already exists');
    }
    if (this.host.opts.overlappingLeaves === 'refuse') {
      for (const { arr, item } of items) {
        if (ARRAY_KIND[arr] !== 'leave') continue;
        const start = String(item.start_time);
        const end = String(item.end_time);
        const clash = this.host.ledger.all().find((e) => e.kind === 'leave' && e.userId === userId && e.status === 2 && String(e.item.start_time) < end && start < String(e.item.end_time));
        if (clash) return fail(400, 1220600, `leave time conflicts with approval ${clash.approvalId}`);
      }
    }
    const now = this.host.now();
    const stamp = DateTime.fromMillis(now, { zone: this.host.opts.timeZone }).toFormat('yyyy-MM-dd HH:mm:ss');
    const echo: Record<string, unknown> = { user_id: userId, date, time_zone: this.host.opts.timeZone };
    const approvalIds: string[] = [];
    for (const { arr, item } of items) {
      const kind = ARRAY_KIND[arr]!;
      const approvalId = this.host.ledger.newApprovalId();
      approvalIds.push(approvalId);
      const stored: Record<string, unknown> = { ...item, approval_id: approvalId };
      delete stored.correct_process_id;
      delete stored.cancel_process_id;
      delete stored.process_id;
      delete stored.leave_detail_range_objs;
      if (kind === 'leave' || kind === 'out') {
        stored.approve_pass_time = stamp;
        stored.approve_apply_time = stamp;
      }
      const entry: LedgerEntry = {
        approvalId,
        kind,
        userId,
        date,
        idempotentId: typeof item.idempotent_id === 'string' ? item.idempotent_id : null,
        item: stored,
        status: 2,
        createdAt: now,
        revokedAt: null,
      };
      this.host.ledger.add(entry);
      this.host.stats.created++;
      echo[arr] = [...((echo[arr] as unknown[] | undefined) ?? []), kind === 'leave' ? this.withDetailRanges(stored) : stored];
    }
    const response = { code: 0, msg: 'success', data: { user_approval: echo } };
    this.host.ledger.rememberResponse(keys, approvalIds, response);
    return { status: 200, body: response };
  }

  // --- query ---------------------------------------------------------------------------------------

  query(url: URL, body: unknown): Answer {
    const et = url.searchParams.get('employee_type');
    if (!employeeTypeSchema.safeParse(et).success) return this.violation('employee_type', 'employee_type invalid');
    const r = queryBodySchema.safeParse(body);
    if (!r.success) return this.violation(fieldPath(r.error.issues[0]!.path) || '(body)', r.error.issues[0]!.message);
    const q = r.data;
    const from = DateTime.fromFormat(String(q.check_date_from), 'yyyyMMdd', { zone: this.host.opts.timeZone });
    const to = DateTime.fromFormat(String(q.check_date_to), 'yyyyMMdd', { zone: this.host.opts.timeZone });
    if (!from.isValid) return this.violation('check_date_from', 'must be a date as yyyyMMdd');
    if (!to.isValid) return this.violation('check_date_to', 'must be a date as yyyyMMdd');
    if (to < from) return this.violation('check_date_to', 'must not be before check_date_from');
    // "不超过 30 天": counted as a difference (≤ 30) or with both ends as days (≤ 29 apart).
    const maxSpan = this.host.opts.queryWindow === 'inclusive' ? 29 : 30;
    if (to.diff(from, 'days').days > maxSpan) return this.violation('check_date_to', 'at most 30 days after check_date_from');
    const tomorrow = DateTime.fromMillis(this.host.now(), { zone: this.host.opts.timeZone }).startOf('day').plus({ days: 1 });
    if (this.host.opts.queryCapOn === 'to' && to > tomorrow) return this.violation('check_date_to', 'may not be later than today + 1 day');
    if (from > tomorrow) return this.violation('check_date_from', 'may not be later than today + 1 day');
    if (q.user_ids.length > this.host.opts.maxQueryUsers) return this.violation('user_ids', `at most ${this.host.opts.maxQueryUsers} users`);
    const rows = this.host.ledger.query({
      userIds: q.user_ids,
      from: q.check_date_from,
      to: q.check_date_to,
      type: q.check_date_type ?? 'PeriodTime',
      status: q.status ?? 2,
      revokedStatus: this.host.opts.revokedStatus,
      timeZone: this.host.opts.timeZone,
    });
    return ok({ user_approvals: rows.map((row) => this.presentQueried(row)) });
  }

  /** The SDK's per-day split of a leave, as unix-second ranges (its meaning is undocumented). */
  private withDetailRanges(item: Record<string, unknown>): Record<string, unknown> {
    if (!this.host.opts.echoLeaveDetailRanges) return item;
    const start = DateTime.fromFormat(String(item.start_time), 'yyyy-MM-dd HH:mm:ss', { zone: this.host.opts.timeZone });
    const end = DateTime.fromFormat(String(item.end_time), 'yyyy-MM-dd HH:mm:ss', { zone: this.host.opts.timeZone });
    if (!start.isValid || !end.isValid) return item;
    return {
      ...item,
      leave_detail_range_objs: [{ day: Number(start.toFormat('yyyyMMdd')), time_ranges: [{ start_time_stamp: Math.floor(start.toSeconds()), end_time_stamp: Math.floor(end.toSeconds()) }] }],
    };
  }

  /** One query group as Feishu presents it: departed users in UTC+0, leave extras per the switches. */
  private presentQueried(row: Record<string, unknown>): Record<string, unknown> {
    const departed = this.host.opts.departedUsers.includes(String(row.user_id));
    const out: Record<string, unknown> = { ...row };
    if (departed) out.time_zone = '';
    for (const arr of Object.keys(ARRAY_KIND)) {
      const list = row[arr] as Array<Record<string, unknown>> | undefined;
      if (!list) continue;
      out[arr] = list.map((item) => {
        let x = ARRAY_KIND[arr] === 'leave' ? this.withDetailRanges(item) : { ...item };
        if (ARRAY_KIND[arr] === 'leave' && this.host.opts.queryInterval === 'omitted') {
          x = { ...x };
          delete x.interval;
        }
        // "如果发起人已离职，则默认为 0 时区": the same instants, as UTC wall clocks.
        if (departed) for (const f of ['start_time', 'end_time', 'approve_pass_time', 'approve_apply_time']) if (typeof x[f] === 'string') x[f] = this.toUtcWallClock(x[f]);
        return x;
      });
    }
    return out;
  }

  private toUtcWallClock(value: string): string {
    const dt = DateTime.fromFormat(value, 'yyyy-MM-dd HH:mm:ss', { zone: this.host.opts.timeZone });
    return dt.isValid ? dt.toUTC().toFormat('yyyy-MM-dd HH:mm:ss') : value;
  }

  // --- process (revoke) ---------------------------------------------------------------------------

  process(body: unknown): Answer {
    const r = processBodySchema.safeParse(body);
    if (!r.success) return this.violation(fieldPath(r.error.issues[0]!.path) || '(body)', r.error.issues[0]!.message);
    const p = r.data;
    const entry = this.host.ledger.get(p.approval_id);
    if (!entry) return this.violation('approval_id', 'approval does not exist');
    if (KIND_APPROVAL_TYPE[entry.kind] !== p.approval_type) return this.violation('approval_type', `does not match the approval (${KIND_APPROVAL_TYPE[entry.kind]})`);
    if (p.status !== 4) return this.violation('status', 'only 4 (revoke) is allowed for leave, out, overtime and trip');
    // A sealed (封账) period can no more be changed by a revoke than by a create.
    if (this.host.opts.sealedUntil && entry.date < this.host.opts.sealedUntil) return fail(400, 1220600, 'the attendance result has been sealed and can not modify');
    if (this.host.opts.revokeReply === 'no-status-unapplied') return ok({ approval_info: { approval_id: entry.approvalId, approval_type: p.approval_type } });
    if (entry.status !== 2) {
      if (this.host.opts.revokeTwice === 'ok') return ok({ approval_info: { approval_id: entry.approvalId, approval_type: p.approval_type, status: entry.status } });
      return fail(400, 1220600, 'the approval is not in an approved state and can not be revoked');
    }
    entry.status = 4;
    entry.revokedAt = this.host.now();
    this.host.stats.revoked++;
    if (this.host.opts.revokeReply === 'no-status') return ok({ approval_info: { approval_id: entry.approvalId, approval_type: p.approval_type } });
    return ok({ approval_info: { approval_id: entry.approvalId, approval_type: p.approval_type, status: 4 } });
  }
}
