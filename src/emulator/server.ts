import http from 'node:http';
import crypto from 'node:crypto';
import { DateTime } from 'luxon';
import { KIND_APPROVAL_TYPE } from '../kinds.js';
import { employeeTypeSchema, fieldPath, processBodySchema, queryBodySchema, validateCreateBody } from '../feishu/schema.js';
import { ARRAY_KIND, Ledger, type LedgerEntry } from './ledger.js';
import { DEFAULT_OPTIONS, FAULT_KINDS, optionsFromEnv, parseFaults, seededRandom, type EmulatorOptions, type FaultKind } from './options.js';

/*
 * A local Feishu that behaves like the real one for the endpoints the worker uses
 * (feishu-api.md §9): the tenant token, user_approvals create and query, approval status
 * processing, the per-second rate limit, and injected faults. Where the documentation is
 * silent the behaviour is an option (duplicateIdempotentId, strict, revokeTwice, …).
 */

const TOKEN_PATH = '/open-apis/auth/v3/tenant_access_token/internal';
const CREATE_PATH = '/open-apis/attendance/v1/user_approvals';
const QUERY_PATH = '/open-apis/attendance/v1/user_approvals/query';
const PROCESS_PATH = '/open-apis/attendance/v1/approval_infos/process';

type Endpoint = 'token' | 'create' | 'query' | 'process';

export interface EmulatorStats {
  calls: Record<Endpoint, number>;
  rateLimited: number;
  faults: Partial<Record<FaultKind, number>>;
  tokenFetches: number;
  tokensIssued: number;
  /** The highest number of attendance calls that arrived in any one-second window. */
  busiestSecond: number;
  created: number;
  revoked: number;
  duplicates: number;
  validationErrors: number;
  /** Successful attendance calls per calendar month (yyyy-MM), what the monthly quota counts. */
  quotaUsed: Record<string, number>;
  /** Calls refused because the monthly quota was used up. */
  quotaExceeded: number;
}

interface Answer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Close the connection without an answer. */
  drop?: boolean;
  /** Raw text instead of JSON. */
  text?: string;
}

const ok = (data: unknown): Answer => ({ status: 200, body: { code: 0, msg: 'success', data } });
const fail = (status: number, code: number, msg: string, extra: Record<string, unknown> = {}): Answer => ({ status, body: { code, msg, ...extra } });

export class EmulatorServer {
  opts: EmulatorOptions;
  readonly ledger = new Ledger();
  private tokens = new Map<string, number>(); // token → expires at (ms)
  private current: { token: string; expiresAt: number } | null = null;
  private windows = new Map<string, { second: number; count: number }>();
  private arrivals = new Map<number, number>();
  private rng: () => number;
  private stats_: EmulatorStats = EmulatorServer.emptyStats();
  readonly server: http.Server;

  constructor(opts: Partial<EmulatorOptions> = {}) {
    // The environment replaces the defaults (CI runs the suite under other readings); a
    // test's own options still win.
    this.opts = { ...DEFAULT_OPTIONS, ...optionsFromEnv(), ...opts };
    this.rng = seededRandom(this.opts.seed);
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 5_000;
  }

  private static emptyStats(): EmulatorStats {
    return {
      calls: { token: 0, create: 0, query: 0, process: 0 },
      rateLimited: 0,
      faults: {},
      tokenFetches: 0,
      tokensIssued: 0,
      busiestSecond: 0,
      created: 0,
      revoked: 0,
      duplicates: 0,
      validationErrors: 0,
      quotaUsed: {},
      quotaExceeded: 0,
    };
  }

  stats(): EmulatorStats {
    return structuredClone(this.stats_);
  }

  reset(): void {
    this.ledger.reset();
    this.stats_ = EmulatorServer.emptyStats();
    this.windows.clear();
    this.arrivals.clear();
    this.rng = seededRandom(this.opts.seed);
  }

  /** Every tenant access token handed out (tests check that none leaks into output). */
  issuedTokens(): string[] {
    return [...this.tokens.keys()];
  }

  setOptions(partial: Partial<EmulatorOptions>): void {
    this.opts = { ...this.opts, ...partial };
    if (partial.seed !== undefined) this.rng = seededRandom(partial.seed);
  }

  private now(): number {
    return this.opts.clock() + this.opts.clockOffsetMs;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://emulator');
    let raw = '';
    for await (const chunk of req) raw += chunk;
    let answer: Answer;
    try {
      answer = await this.route(req.method ?? 'GET', url, req.headers, raw);
    } catch (err) {
      answer = fail(500, 1225000, `internal server error: ${(err as Error).message}`);
    }
    if (answer.drop) {
      res.socket?.destroy();
      return;
    }
    const headers: Record<string, string> = { 'x-tt-logid': crypto.randomBytes(12).toString('hex'), ...answer.headers };
    if (answer.text !== undefined) {
      res.writeHead(answer.status, { ...headers, 'content-type': 'text/html' });
      res.end(answer.text);
      return;
    }
    res.writeHead(answer.status, { ...headers, 'content-type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify(answer.body ?? {}));
  }

  private parseJson(raw: string): unknown {
    if (!raw) return {};
    try {
      return JSON.parse(raw);
    } catch {
      return undefined;
    }
  }

  private async route(method: string, url: URL, headers: http.IncomingHttpHeaders, raw: string): Promise<Answer> {
    if (url.pathname.startsWith('/_emulator/')) return this.introspect(method, url.pathname, raw);
    if (method !== 'POST') return fail(404, 404, 'not found');
    const body = this.parseJson(raw);
    if (url.pathname === TOKEN_PATH) return this.token(body);
    const endpoint: Endpoint | null =
      url.pathname === CREATE_PATH ? 'create' : url.pathname === QUERY_PATH ? 'query' : url.pathname === PROCESS_PATH ? 'process' : null;
    if (!endpoint) return fail(404, 404, `not found: ${url.pathname}`);
    this.stats_.calls[endpoint]++;
    this.countArrival();

    const auth = this.authorize(headers.authorization);
    if (auth) return auth;
    const month = this.month();
    if (this.opts.monthlyQuota !== null && (this.stats_.quotaUsed[month] ?? 0) >= this.opts.monthlyQuota) return this.quotaExceeded();
    const answer = await this.attendance(endpoint, url, body);
    // Only successful calls count against the quota; the month is the one the call arrived in.
    if (answer.status === 200 && (answer.body as { code?: unknown } | undefined)?.code === 0) this.stats_.quotaUsed[month] = (this.stats_.quotaUsed[month] ?? 0) + 1;
    return answer;
  }

  /** The calendar month (yyyy-MM) of the emulator's clock, in its zone: the quota's period. */
  private month(): string {
    return DateTime.fromMillis(this.now(), { zone: this.opts.timeZone }).toFormat('yyyy-MM');
  }

  private quotaExceeded(): Answer {
    this.stats_.quotaExceeded++;
    return fail(429, 99991403, "This month's API call quota has been exceeded");
  }

  private async attendance(endpoint: Endpoint, url: URL, body: unknown): Promise<Answer> {
    const limited = this.rateLimit(endpoint);
    if (limited) return limited;
    if (this.opts.latencyMs > 0) await new Promise((r) => setTimeout(r, this.opts.latencyMs));
    // "API 接入" not done in the attendance console: every user looks unknown (feishu-api.md §6.1).
    if (!this.opts.appInUse) return fail(400, 99991662, 'app not in use');
    if (!this.opts.apiAccess) return fail(400, 1220004, 'user_id is not exist or does not have permission');

    const fault = this.drawFault();
    if (fault) {
      this.stats_.faults[fault] = (this.stats_.faults[fault] ?? 0) + 1;
      switch (fault) {
        case '5xx':
          return fail(500, 1225000, 'internal server error');
        case '502':
          return { status: 502, text: '<html><body>502 Bad Gateway</body></html>' };
        case 'drop':
          return { status: 0, drop: true };
        case '429':
          this.stats_.rateLimited++;
          return this.throttled();
        case '1000004':
          this.stats_.rateLimited++;
          return fail(400, 1000004, 'method rate limited');
        case '1000005':
          this.stats_.rateLimited++;
          return fail(400, 1000005, 'app rate limited');
        case 'no-row-affected':
          return fail(400, 1220600, 'no row affected');
        case 'quota':
          return this.quotaExceeded();
        case 'slow':
          await new Promise((r) => setTimeout(r, this.opts.slowMs));
          break;
        case 'stored-then-failed': {
          // The write happens, the caller never learns it: the case idempotency exists for.
          await this.dispatch(endpoint, url, body);
          return this.rng() < 0.5 ? { status: 0, drop: true } : fail(500, 1225000, 'internal server error');
        }
      }
    }
    return this.dispatch(endpoint, url, body);
  }

  private dispatch(endpoint: Endpoint, url: URL, body: unknown): Answer {
    if (body === undefined) return fail(400, 1220001, 'param invalid: request body is not valid JSON');
    if (endpoint === 'create') return this.create(url, body);
    if (endpoint === 'query') return this.query(url, body);
    return this.process(body);
  }

  private drawFault(): FaultKind | null {
    const r = this.rng();
    let acc = 0;
    for (const kind of FAULT_KINDS) {
      acc += this.opts.faults[kind] ?? 0;
      if (r < acc) return kind;
    }
    return null;
  }

  private countArrival(): void {
    const second = Math.floor(this.now() / 1000);
    const n = (this.arrivals.get(second) ?? 0) + 1;
    this.arrivals.set(second, n);
    if (n > this.stats_.busiestSecond) this.stats_.busiestSecond = n;
    if (this.arrivals.size > 120) for (const s of this.arrivals.keys()) if (s < second - 60) this.arrivals.delete(s);
  }

  // --- token -----------------------------------------------------------------------------

  private token(body: unknown): Answer {
    this.stats_.calls.token++;
    this.stats_.tokenFetches++;
    const b = (body ?? {}) as { app_id?: unknown; app_secret?: unknown };
    if (typeof b.app_id !== 'string' || typeof b.app_secret !== 'string' || !b.app_id || !b.app_secret) {
      return fail(400, 10003, 'invalid param: app_id and app_secret are required');
    }
    if (b.app_id !== this.opts.appId) return fail(400, 10003, 'invalid param: app_id does not exist');
    if (b.app_secret !== this.opts.appSecret) return fail(400, 10015, 'app secret invalid');
    const now = this.now();
    // ≥ 30 min left: the same token again; otherwise a new one, the old one staying valid.
    if (this.current && this.current.expiresAt - now >= 1_800_000) {
      return { status: 200, body: { code: 0, msg: 'ok', tenant_access_token: this.current.token, expire: Math.floor((this.current.expiresAt - now) / 1000) } };
    }
    const token = `t-${crypto.randomBytes(20).toString('hex')}`;
    const expiresAt = now + this.opts.tokenTtlSeconds * 1000;
    this.tokens.set(token, expiresAt);
    this.current = { token, expiresAt };
    this.stats_.tokensIssued++;
    return { status: 200, body: { code: 0, msg: 'ok', tenant_access_token: token, expire: this.opts.tokenTtlSeconds } };
  }

  private authorize(header: string | undefined): Answer | null {
    const status = this.opts.tokenErrorHttpStatus;
    if (!header || !/^Bearer\s+\S+/i.test(header)) return fail(status, 99991661, 'Missing access token for authorization. Please make a request with token attached.');
    const token = header.replace(/^Bearer\s+/i, '').trim();
    if (!/^[tu]-/.test(token)) return fail(status, 99991671, 'Invalid token: must start with t-/u-');
    const expiresAt = this.tokens.get(token);
    if (expiresAt === undefined || expiresAt <= this.now()) {
      return fail(status, 99991663, 'Invalid access token for authorization. Please make a request with token attached');
    }
    return null;
  }

  // --- rate limit ----------------------------------------------------------------------------

  private throttled(): Answer {
    const reset = Math.max(1, Math.ceil((1000 - (this.now() % 1000)) / 1000));
    return {
      status: this.opts.rateLimitHttpStatus,
      body: { code: 99991400, msg: 'request trigger frequency limit' },
      headers: { 'x-ogw-ratelimit-limit': String(this.opts.rateLimit), 'x-ogw-ratelimit-reset': String(reset) },
    };
  }

  /** Fixed one-second windows per (app, endpoint), aligned to the clock's seconds. */
  private rateLimit(endpoint: Endpoint): Answer | null {
    const second = Math.floor(this.now() / 1000);
    const key = `${this.opts.appId}:${endpoint}`;
    const w = this.windows.get(key);
    if (!w || w.second !== second) {
      this.windows.set(key, { second, count: 1 });
      return null;
    }
    if (w.count >= this.opts.rateLimit) {
      this.stats_.rateLimited++;
      return this.throttled();
    }
    w.count++;
    return null;
  }

  // --- create ----------------------------------------------------------------------------------

  private violation(field: string, description: string): Answer {
    this.stats_.validationErrors++;
    return fail(400, 1220001, `param invalid: ${field} ${description}`, {
      error: { field_violations: [{ field, value: '', description }] },
    });
  }

  private create(url: URL, body: unknown): Answer {
    const et = url.searchParams.get('employee_type');
    if (!employeeTypeSchema.safeParse(et).success) return this.violation('employee_type', 'employee_type invalid (employee_id, employee_no or open_id)');
    const v = validateCreateBody(body, { strict: this.opts.strict });
    if (!v.ok) {
      this.stats_.validationErrors++;
      const first = v.violations[0]!;
      return fail(400, 1220001, `param invalid: ${first.field} ${first.description}`, {
        error: { field_violations: v.violations.map((x) => ({ field: x.field, value: '', description: x.description })) },
      });
    }
    const ua = (body as { user_approval: Record<string, unknown> }).user_approval;
    if (this.opts.i18nNamesRequired) {
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
    if (this.opts.users && !this.opts.users.includes(userId)) return fail(400, 1220004, 'user_id is not exist or does not have permission');
    if (this.opts.sealedUntil && date < this.opts.sealedUntil) {
      return fail(400, 1220600, 'the attendance result has been sealed and can not modify');
    }
    const items: Array<{ arr: string; item: Record<string, unknown> }> = [];
    for (const arr of Object.keys(ARRAY_KIND)) {
      for (const item of (ua[arr] as Array<Record<string, unknown>> | undefined) ?? []) items.push({ arr, item });
    }
    const keys = items.map((i) => i.item.idempotent_id).filter((k): k is string => typeof k === 'string');
    for (const k of keys) this.ledger.countPost(k);
    const dup = keys.map((k) => this.ledger.findIdempotent(k)).find((x) => x !== undefined);
    if (dup) {
      this.stats_.duplicates++;
      if (this.opts.duplicateIdempotentId === 'replay') return { status: 200, body: dup.response };
      if (this.opts.duplicateIdempotentId === 'conflict-with-data') {
        // The existing record, as Feishu People's leave_granting_records answers 1160010.
        return fail(400, 1220600, 'the object already exists', { data: (dup.response as { data?: unknown }).data });
      }
      return fail(400, 1220600, 'the object already exists');
    }
    if (this.opts.overlappingLeaves === 'refuse') {
      for (const { arr, item } of items) {
        if (ARRAY_KIND[arr] !== 'leave') continue;
        const start = String(item.start_time);
        const end = String(item.end_time);
        const clash = this.ledger.all().find((e) => e.kind === 'leave' && e.userId === userId && e.status === 2 && String(e.item.start_time) < end && start < String(e.item.end_time));
        if (clash) return fail(400, 1220600, `leave time conflicts with approval ${clash.approvalId}`);
      }
    }
    const now = this.now();
    const stamp = DateTime.fromMillis(now, { zone: this.opts.timeZone }).toFormat('yyyy-MM-dd HH:mm:ss');
    const echo: Record<string, unknown> = { user_id: userId, date, time_zone: this.opts.timeZone };
    const approvalIds: string[] = [];
    for (const { arr, item } of items) {
      const kind = ARRAY_KIND[arr]!;
      const approvalId = this.ledger.newApprovalId();
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
      this.ledger.add(entry);
      this.stats_.created++;
      echo[arr] = [...((echo[arr] as unknown[] | undefined) ?? []), kind === 'leave' ? this.withDetailRanges(stored) : stored];
    }
    const response = { code: 0, msg: 'success', data: { user_approval: echo } };
    this.ledger.rememberResponse(keys, approvalIds, response);
    return { status: 200, body: response };
  }

  // --- query ---------------------------------------------------------------------------------------

  private query(url: URL, body: unknown): Answer {
    const et = url.searchParams.get('employee_type');
    if (!employeeTypeSchema.safeParse(et).success) return this.violation('employee_type', 'employee_type invalid');
    const r = queryBodySchema.safeParse(body);
    if (!r.success) return this.violation(fieldPath(r.error.issues[0]!.path) || '(body)', r.error.issues[0]!.message);
    const q = r.data;
    const from = DateTime.fromFormat(String(q.check_date_from), 'yyyyMMdd', { zone: this.opts.timeZone });
    const to = DateTime.fromFormat(String(q.check_date_to), 'yyyyMMdd', { zone: this.opts.timeZone });
    if (!from.isValid) return this.violation('check_date_from', 'must be a date as yyyyMMdd');
    if (!to.isValid) return this.violation('check_date_to', 'must be a date as yyyyMMdd');
    if (to < from) return this.violation('check_date_to', 'must not be before check_date_from');
    // "不超过 30 天": counted as a difference (≤ 30) or with both ends as days (≤ 29 apart).
    const maxSpan = this.opts.queryWindow === 'inclusive' ? 29 : 30;
    if (to.diff(from, 'days').days > maxSpan) return this.violation('check_date_to', 'at most 30 days after check_date_from');
    const tomorrow = DateTime.fromMillis(this.now(), { zone: this.opts.timeZone }).startOf('day').plus({ days: 1 });
    if (this.opts.queryCapOn === 'to' && to > tomorrow) return this.violation('check_date_to', 'may not be later than today + 1 day');
    if (from > tomorrow) return this.violation('check_date_from', 'may not be later than today + 1 day');
    if (q.user_ids.length > this.opts.maxQueryUsers) return this.violation('user_ids', `at most ${this.opts.maxQueryUsers} users`);
    const rows = this.ledger.query({
      userIds: q.user_ids,
      from: q.check_date_from,
      to: q.check_date_to,
      type: q.check_date_type ?? 'PeriodTime',
      status: q.status ?? 2,
      revokedStatus: this.opts.revokedStatus,
      timeZone: this.opts.timeZone,
    });
    return ok({ user_approvals: rows.map((row) => this.presentQueried(row)) });
  }

  /** The SDK's per-day split of a leave, as unix-second ranges (its meaning is undocumented). */
  private withDetailRanges(item: Record<string, unknown>): Record<string, unknown> {
    if (!this.opts.echoLeaveDetailRanges) return item;
    const start = DateTime.fromFormat(String(item.start_time), 'yyyy-MM-dd HH:mm:ss', { zone: this.opts.timeZone });
    const end = DateTime.fromFormat(String(item.end_time), 'yyyy-MM-dd HH:mm:ss', { zone: this.opts.timeZone });
    if (!start.isValid || !end.isValid) return item;
    return {
      ...item,
      leave_detail_range_objs: [{ day: Number(start.toFormat('yyyyMMdd')), time_ranges: [{ start_time_stamp: Math.floor(start.toSeconds()), end_time_stamp: Math.floor(end.toSeconds()) }] }],
    };
  }

  /** One query group as Feishu presents it: departed users in UTC+0, leave extras per the switches. */
  private presentQueried(row: Record<string, unknown>): Record<string, unknown> {
    const departed = this.opts.departedUsers.includes(String(row.user_id));
    const out: Record<string, unknown> = { ...row };
    if (departed) out.time_zone = '';
    for (const arr of Object.keys(ARRAY_KIND)) {
      const list = row[arr] as Array<Record<string, unknown>> | undefined;
      if (!list) continue;
      out[arr] = list.map((item) => {
        let x = ARRAY_KIND[arr] === 'leave' ? this.withDetailRanges(item) : { ...item };
        if (ARRAY_KIND[arr] === 'leave' && this.opts.queryInterval === 'omitted') {
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
    const dt = DateTime.fromFormat(value, 'yyyy-MM-dd HH:mm:ss', { zone: this.opts.timeZone });
    return dt.isValid ? dt.toUTC().toFormat('yyyy-MM-dd HH:mm:ss') : value;
  }

  // --- process (revoke) ---------------------------------------------------------------------------

  private process(body: unknown): Answer {
    const r = processBodySchema.safeParse(body);
    if (!r.success) return this.violation(fieldPath(r.error.issues[0]!.path) || '(body)', r.error.issues[0]!.message);
    const p = r.data;
    const entry = this.ledger.get(p.approval_id);
    if (!entry) return this.violation('approval_id', 'approval does not exist');
    if (KIND_APPROVAL_TYPE[entry.kind] !== p.approval_type) return this.violation('approval_type', `does not match the approval (${KIND_APPROVAL_TYPE[entry.kind]})`);
    if (p.status !== 4) return this.violation('status', 'only 4 (revoke) is allowed for leave, out, overtime and trip');
    // A sealed (封账) period can no more be changed by a revoke than by a create.
    if (this.opts.sealedUntil && entry.date < this.opts.sealedUntil) return fail(400, 1220600, 'the attendance result has been sealed and can not modify');
    if (this.opts.revokeReply === 'no-status-unapplied') return ok({ approval_info: { approval_id: entry.approvalId, approval_type: p.approval_type } });
    if (entry.status !== 2) {
      if (this.opts.revokeTwice === 'ok') return ok({ approval_info: { approval_id: entry.approvalId, approval_type: p.approval_type, status: entry.status } });
      return fail(400, 1220600, 'the approval is not in an approved state and can not be revoked');
    }
    entry.status = 4;
    entry.revokedAt = this.now();
    this.stats_.revoked++;
    if (this.opts.revokeReply === 'no-status') return ok({ approval_info: { approval_id: entry.approvalId, approval_type: p.approval_type } });
    return ok({ approval_info: { approval_id: entry.approvalId, approval_type: p.approval_type, status: 4 } });
  }

  // --- introspection ---------------------------------------------------------------------------------

  private introspect(method: string, path: string, raw: string): Answer {
    if (path === '/_emulator/ledger' && method === 'GET') {
      return { status: 200, body: { records: this.ledger.all(), posts: this.ledger.postCounts() } };
    }
    if (path === '/_emulator/stats' && method === 'GET') return { status: 200, body: this.stats() };
    if (path === '/_emulator/reset' && method === 'POST') {
      this.reset();
      return { status: 200, body: { ok: true } };
    }
    if (path === '/_emulator/options' && method === 'POST') {
      const patch = (this.parseJson(raw) ?? {}) as Partial<EmulatorOptions> & { faults?: unknown };
      if (typeof patch.faults === 'string') patch.faults = parseFaults(patch.faults);
      delete (patch as { clock?: unknown }).clock;
      this.setOptions(patch as Partial<EmulatorOptions>);
      return { status: 200, body: { ok: true } };
    }
    return fail(404, 404, 'not found');
  }
}
