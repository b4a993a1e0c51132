import http from 'node:http';
import crypto from 'node:crypto';
import { DateTime } from 'luxon';
import { Ledger } from './ledger.js';
import { fail, type Answer, type EmulatorStats, type Endpoint } from './answers.js';
import { AttendanceEndpoints } from './attendance.js';
import { CONTACT_PATH, ContactEndpoint } from './contact.js';
import { AdminActions } from './admin.js';
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


export type { EmulatorStats };

export class EmulatorServer {
  opts: EmulatorOptions;
  readonly ledger = new Ledger();
  private tokens = new Map<string, number>(); // token → expires at (ms)
  private current: { token: string; expiresAt: number } | null = null;
  private windows = new Map<string, { second: number; count: number }>();
  private arrivals = new Map<number, number>();
  private rng: () => number;
  private stats_: EmulatorStats = EmulatorServer.emptyStats();
  /** The attendance endpoints, reading this server's state as it is at each call. */
  private readonly attendanceApi = ((server: EmulatorServer) =>
    new AttendanceEndpoints({
      get ledger() {
        return server.ledger;
      },
      get opts() {
        return server.opts;
      },
      get stats() {
        return server.stats_;
      },
      now: () => server.now(),
    }))(this);
  readonly admin = ((server: EmulatorServer) =>
    new AdminActions({
      get ledger() {
        return server.ledger;
      },
      now: () => server.now(),
    }))(this);
  private readonly contact = ((server: EmulatorServer) =>
    new ContactEndpoint({
      get opts() {
        return server.opts;
      },
      get stats() {
        return server.stats_;
      },
      now: () => server.now(),
      authorize: (header) => server.authorize(header),
      throttled: () => server.throttled(),
    }))(this);
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
      contact: { calls: 0, emails: 0, mobiles: 0, maxEmails: 0, maxMobiles: 0, rateLimited: 0 },
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
    if (url.pathname === CONTACT_PATH) return this.contact.answer(url, headers, body);
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

  /** Attendance calls being answered right now (latency, slow faults): tests wait for 0 instead of sleeping. */
  inFlight = 0;

  private held: { promise: Promise<void>; release: () => void } | null = null;

  /** Hold attendance answers (after their latency) until the returned function is called. */
  holdAnswers(): () => void {
    if (!this.held) {
      let release = (): void => undefined;
      const promise = new Promise<void>((resolve) => (release = resolve));
      this.held = { promise, release };
    }
    const held = this.held;
    return () => {
      if (this.held === held) this.held = null;
      held.release();
    };
  }

  private async attendance(endpoint: Endpoint, url: URL, body: unknown): Promise<Answer> {
    this.inFlight++;
    try {
      return await this.answerAttendance(endpoint, url, body);
    } finally {
      this.inFlight--;
    }
  }

  private async answerAttendance(endpoint: Endpoint, url: URL, body: unknown): Promise<Answer> {
    const limited = this.rateLimit(endpoint);
    if (limited) return limited;
    if (this.opts.latencyMs > 0) await new Promise((r) => setTimeout(r, this.opts.latencyMs));
    if (this.held) await this.held.promise;
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
    if (endpoint === 'create') return this.attendanceApi.create(url, body);
    if (endpoint === 'query') return this.attendanceApi.query(url, body);
    return this.attendanceApi.process(body);
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
    if (path.startsWith('/_emulator/admin/') && method === 'POST') return this.admin.answer(path.slice('/_emulator/admin/'.length), raw);
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
