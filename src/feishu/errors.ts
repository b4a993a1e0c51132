import { AppError, ExitCode } from '../errors.js';
import { redact, redactValue } from '../log/redact.js';

/**
 * Feishu failures, classified once so that every caller (token provider, client, outbox)
 * branches on the same two fields: a stable `code` (documented for operators) and a
 * `category` that says what the *worker* should do with the operation.
 *
 * Classification follows feishu-api.md §1: the body `code` first, then the HTTP status,
 * because the same code arrives with different statuses (99991400 with 429 or 400, token
 * errors with 400 or 200, 1225001 with 400 or 500).
 */

/**
 * - transient:    worth retrying with backoff (network, timeout, 5xx, internal codes).
 * - rate_limited: throttled (429 / 99991400); retry after `resetSeconds`; not the record's fault.
 * - auth:         app credentials, token or app-level permissions are broken; stop sending.
 * - quota:        the tenant's monthly API quota is used up (99991403); pause until next month.
 * - permanent:    this record was rejected (parameters, user, data scope, sealed period); no retry.
 * - duplicate:    the idempotent_id exists and could not be matched to a live record.
 * - ambiguous:    a write may or may not have been stored and the lookup could not tell; retry
 *                 later with the same idempotent_id, never with a new one.
 */
export const FEISHU_CATEGORIES = Object.freeze(['transient', 'rate_limited', 'auth', 'quota', 'permanent', 'duplicate', 'ambiguous'] as const);
export type FeishuCategory = (typeof FEISHU_CATEGORIES)[number];

/** Stable error codes; each maps to exactly one category (see `CODE_CATEGORY`). */
export const FeishuErrorCode = Object.freeze({
  RATE_LIMITED: 'FEISHU_RATE_LIMITED',
  QUOTA_EXCEEDED: 'FEISHU_QUOTA_EXCEEDED',
  TOKEN_INVALID: 'FEISHU_TOKEN_INVALID',
  AUTH: 'FEISHU_AUTH',
  CONFIG: 'FEISHU_CONFIG',
  SCOPE_MISSING: 'FEISHU_SCOPE_MISSING',
  PARAM_INVALID: 'FEISHU_PARAM_INVALID',
  USER_NOT_FOUND: 'FEISHU_USER_NOT_FOUND',
  NO_PERMISSION: 'FEISHU_NO_PERMISSION',
  SEALED: 'FEISHU_SEALED',
  RULE_NOT_FOUND: 'FEISHU_RULE_NOT_FOUND',
  DATA_REJECTED: 'FEISHU_DATA_REJECTED',
  REJECTED: 'FEISHU_REJECTED',
  DUPLICATE: 'FEISHU_DUPLICATE',
  NO_ROW_AFFECTED: 'FEISHU_NO_ROW_AFFECTED',
  INTERNAL: 'FEISHU_INTERNAL',
  SERVER_ERROR: 'FEISHU_SERVER_ERROR',
  BAD_RESPONSE: 'FEISHU_BAD_RESPONSE',
  NETWORK: 'FEISHU_NETWORK',
  TIMEOUT: 'FEISHU_TIMEOUT',
  AMBIGUOUS: 'FEISHU_AMBIGUOUS',
} as const);
export type FeishuErrorCode = (typeof FeishuErrorCode)[keyof typeof FeishuErrorCode];

export const CODE_CATEGORY: Readonly<Record<FeishuErrorCode, FeishuCategory>> = Object.freeze({
  FEISHU_RATE_LIMITED: 'rate_limited',
  FEISHU_QUOTA_EXCEEDED: 'quota',
  FEISHU_TOKEN_INVALID: 'auth',
  FEISHU_AUTH: 'auth',
  FEISHU_CONFIG: 'auth',
  FEISHU_SCOPE_MISSING: 'auth',
  FEISHU_PARAM_INVALID: 'permanent',
  FEISHU_USER_NOT_FOUND: 'permanent',
  FEISHU_NO_PERMISSION: 'permanent',
  FEISHU_SEALED: 'permanent',
  FEISHU_RULE_NOT_FOUND: 'permanent',
  FEISHU_DATA_REJECTED: 'permanent',
  FEISHU_REJECTED: 'permanent',
  FEISHU_DUPLICATE: 'duplicate',
  FEISHU_NO_ROW_AFFECTED: 'transient',
  FEISHU_INTERNAL: 'transient',
  FEISHU_SERVER_ERROR: 'transient',
  FEISHU_BAD_RESPONSE: 'transient',
  FEISHU_NETWORK: 'transient',
  FEISHU_TIMEOUT: 'transient',
  FEISHU_AMBIGUOUS: 'ambiguous',
});

export type FeishuEndpoint = 'token' | 'create' | 'query' | 'process' | 'contact';

/** 1225001: the rejected records per kind, parsed out of `msg` (or `data`) when possible (§6.3). */
export interface ErrorRecords {
  TripErrorRecords?: unknown;
  OvertimeWorkErrorRecords?: unknown;
  LeaveErrorRecords?: unknown;
  OutErrorRecords?: unknown;
  [key: string]: unknown;
}

export interface FieldViolation {
  field?: string;
  value?: string;
  description?: string;
}

export interface FeishuErrorInit {
  endpoint: FeishuEndpoint;
  httpStatus?: number | undefined;
  feishuCode?: number | undefined;
  feishuMsg?: string | undefined;
  logId?: string | undefined;
  /** Seconds until the rate limit recovers (`x-ogw-ratelimit-reset`), when throttled. */
  resetSeconds?: number | undefined;
  /** True when a write may have been applied although no success reply arrived. */
  mayHaveApplied?: boolean | undefined;
  errorRecords?: ErrorRecords | string | undefined;
  fieldViolations?: FieldViolation[] | undefined;
  /** The approval an ambiguity or duplicate refers to, when one was found. */
  approvalId?: string | undefined;
  /** A one-line, already sanitized description of the underlying cause (never the raw got error). */
  causeText?: string | undefined;
  /** Overrides the derived message (still redacted). */
  message?: string | undefined;
}

export class FeishuError extends AppError {
  declare readonly code: FeishuErrorCode;
  readonly category: FeishuCategory;
  readonly endpoint: FeishuEndpoint;
  readonly httpStatus: number | undefined;
  readonly feishuCode: number | undefined;
  readonly feishuMsg: string | undefined;
  readonly logId: string | undefined;
  readonly resetSeconds: number | undefined;
  readonly mayHaveApplied: boolean;
  readonly errorRecords: ErrorRecords | string | undefined;
  readonly fieldViolations: FieldViolation[] | undefined;
  readonly approvalId: string | undefined;
  readonly causeText: string | undefined;

  constructor(code: FeishuErrorCode, init: FeishuErrorInit) {
    const category = CODE_CATEGORY[code];
    const feishuMsg = init.feishuMsg === undefined ? undefined : redact(init.feishuMsg);
    const causeText = init.causeText === undefined ? undefined : redact(init.causeText);
    const message = redact(init.message ?? describe(code, init.endpoint, init.httpStatus, init.feishuCode, feishuMsg, causeText, init.logId));
    // Deliberately no `cause`: got's errors carry the request options, headers included (the bearer token).
    super(code, message, {
      exitCode: code === FeishuErrorCode.CONFIG || code === FeishuErrorCode.SCOPE_MISSING ? ExitCode.USAGE : ExitCode.RUNTIME,
      retryable: category === 'transient' || category === 'rate_limited' || category === 'ambiguous',
    });
    this.name = 'FeishuError';
    this.category = category;
    this.endpoint = init.endpoint;
    this.httpStatus = init.httpStatus;
    this.feishuCode = init.feishuCode;
    this.feishuMsg = feishuMsg;
    this.logId = init.logId;
    this.resetSeconds = init.resetSeconds;
    this.mayHaveApplied = init.mayHaveApplied ?? false;
    this.errorRecords = init.errorRecords === undefined ? undefined : redactValue(init.errorRecords);
    this.fieldViolations = init.fieldViolations === undefined ? undefined : redactValue(init.fieldViolations);
    this.approvalId = init.approvalId;
    this.causeText = causeText;
  }

  /** A token error that a fresh token may cure (§2.4): refresh once, then give up. */
  get tokenInvalid(): boolean {
    return this.code === FeishuErrorCode.TOKEN_INVALID;
  }

  /** Plain fields for logs and the sync table; never contains request headers. */
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      category: this.category,
      retryable: this.retryable,
      endpoint: this.endpoint,
      httpStatus: this.httpStatus,
      feishuCode: this.feishuCode,
      feishuMsg: this.feishuMsg,
      logId: this.logId,
      resetSeconds: this.resetSeconds,
      mayHaveApplied: this.mayHaveApplied,
      errorRecords: this.errorRecords,
      fieldViolations: this.fieldViolations,
      approvalId: this.approvalId,
      message: this.message,
    };
  }
}

export function isFeishuError(err: unknown): err is FeishuError {
  return err instanceof FeishuError;
}

function describe(
  code: FeishuErrorCode,
  endpoint: FeishuEndpoint,
  httpStatus: number | undefined,
  feishuCode: number | undefined,
  feishuMsg: string | undefined,
  causeText: string | undefined,
  logId: string | undefined,
): string {
  const parts = [`Feishu ${endpoint}: ${code}`];
  if (feishuCode !== undefined) parts.push(`code ${feishuCode}`);
  if (feishuMsg) parts.push(`"${feishuMsg.length > 300 ? `${feishuMsg.slice(0, 300)}…` : feishuMsg}"`);
  if (causeText) parts.push(causeText);
  const tail: string[] = [];
  if (httpStatus !== undefined) tail.push(`HTTP ${httpStatus}`);
  if (logId) tail.push(`logid ${logId}`);
  return `${parts.join(' ')}${tail.length ? ` (${tail.join(', ')})` : ''}`;
}

// ---------------------------------------------------------------------------------------
// Classification of responses

/** Codes of the token endpoint that mean the app configuration is wrong (§2.3). */
const CONFIG_CODES = new Set([10003, 10014, 10015, 99991543, 99991401]);
/** Token-invalid codes on business calls: drop the token, refetch, retry once (§2.4). */
const TOKEN_INVALID_CODES = new Set([99991663, 99991664, 99991665, 99991671, 1220002]);
/** Token problems a fresh tenant token cannot cure (wrong token type, missing header). */
/** 99991662 "app not in use": the app is disabled, so every call fails until an admin enables it. */
const AUTH_CODES = new Set([99991661, 99991662, 99991668, 99991677]);
/** Throttling: 99991400 (frequency control) and the generic list's 1000004 method / 1000005 app rate limited. */
const THROTTLE_CODES = new Set([99991400, 1000004, 1000005]);
/** Attendance internal errors: retry with backoff (§6.1). */
const INTERNAL_CODES = new Set([1225000, 1226000, 1226500, 1227500]);

/** 1220600 is a catch-all: only its `msg` tells the cases apart (§6.2). Contains-match, case-insensitive. */
const MSG_1220600: ReadonlyArray<[string, FeishuErrorCode]> = [
  ['no row affected', FeishuErrorCode.NO_ROW_AFFECTED],
  ['the object already exists', FeishuErrorCode.DUPLICATE],
  ['sealed', FeishuErrorCode.SEALED],
  ['name or employee_no invalid', FeishuErrorCode.USER_NOT_FOUND],
  ['auth no permission', FeishuErrorCode.NO_PERMISSION],
  ['param invalid', FeishuErrorCode.PARAM_INVALID],
  ['time is invalid', FeishuErrorCode.PARAM_INVALID],
  ['time calculation failed', FeishuErrorCode.PARAM_INVALID],
  ['rule does not exist', FeishuErrorCode.RULE_NOT_FOUND],
  ['rule not exist', FeishuErrorCode.RULE_NOT_FOUND],
];

/** 1227500's msg may name a user the org service cannot find: that is a record problem, not an outage. */
const MISSING_USER_MSG = /not\s*find\s*user|user\s*not\s*(?:found|exist)|larkid/i;

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON body, or undefined when the body was empty or not JSON. */
  body: unknown;
}

interface Envelope {
  code: number;
  msg: string;
  data?: unknown;
  error?: { logid?: unknown; field_violations?: unknown } | undefined;
}

export function readEnvelope(body: unknown): Envelope | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const b = body as Record<string, unknown>;
  if (typeof b.code !== 'number') return undefined;
  const error = typeof b.error === 'object' && b.error !== null ? (b.error as Envelope['error']) : undefined;
  return { code: b.code, msg: typeof b.msg === 'string' ? b.msg : '', data: b.data, error };
}

function header(headers: RawResponse['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function logIdOf(res: RawResponse): string | undefined {
  const fromHeader = header(res.headers, 'x-tt-logid');
  if (fromHeader) return fromHeader;
  const env = readEnvelope(res.body);
  return typeof env?.error?.logid === 'string' ? env.error.logid : undefined;
}

export function resetSecondsOf(res: RawResponse): number | undefined {
  const v = header(res.headers, 'x-ogw-ratelimit-reset');
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

/** §6.3: the error records are a JSON string in `msg` (emulator), possibly in `data`; else keep the text. */
export function parseErrorRecords(msg: string, data: unknown): ErrorRecords | string | undefined {
  const start = msg.indexOf('{');
  if (start >= 0) {
    try {
      const parsed: unknown = JSON.parse(msg.slice(start));
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return parsed as ErrorRecords;
    } catch {
      // not JSON: fall through to `data`, then to the raw text
    }
  }
  if (typeof data === 'object' && data !== null && !Array.isArray(data) && Object.keys(data).some((k) => k.endsWith('ErrorRecords'))) {
    return data as ErrorRecords;
  }
  return msg || undefined;
}

function fieldViolationsOf(env: Envelope): FieldViolation[] | undefined {
  const fv = env.error?.field_violations;
  return Array.isArray(fv) ? (fv.filter((v) => typeof v === 'object' && v !== null) as FieldViolation[]) : undefined;
}

/** The code for a non-zero body code, or undefined when the code alone does not decide. */
function codeForFeishuCode(endpoint: FeishuEndpoint, code: number, msg: string): FeishuErrorCode | undefined {
  if (THROTTLE_CODES.has(code)) return FeishuErrorCode.RATE_LIMITED;
  if (code === 99991403) return FeishuErrorCode.QUOTA_EXCEEDED;
  if (TOKEN_INVALID_CODES.has(code)) return endpoint === 'token' ? FeishuErrorCode.CONFIG : FeishuErrorCode.TOKEN_INVALID;
  if (CONFIG_CODES.has(code)) return FeishuErrorCode.CONFIG;
  if (AUTH_CODES.has(code)) return FeishuErrorCode.AUTH;
  if (code === 99991672) return FeishuErrorCode.SCOPE_MISSING;
  if (code === 1220001) return FeishuErrorCode.PARAM_INVALID;
  if (code === 1220004) return FeishuErrorCode.USER_NOT_FOUND;
  if (code === 1220005) return FeishuErrorCode.NO_PERMISSION;
  if (code === 1225001) return FeishuErrorCode.DATA_REJECTED;
  if (code === 1227500 && MISSING_USER_MSG.test(msg)) return FeishuErrorCode.USER_NOT_FOUND;
  if (INTERNAL_CODES.has(code)) return FeishuErrorCode.INTERNAL;
  if (code === 1220600) {
    const lower = msg.toLowerCase();
    for (const [needle, c] of MSG_1220600) if (lower.includes(needle)) return c;
    return FeishuErrorCode.REJECTED;
  }
  return undefined;
}

function codeForHttpStatus(status: number): FeishuErrorCode | undefined {
  if (status === 429) return FeishuErrorCode.RATE_LIMITED;
  if (status >= 500) return FeishuErrorCode.SERVER_ERROR;
  if (status === 401 || status === 403) return FeishuErrorCode.AUTH;
  if (status >= 400) return FeishuErrorCode.REJECTED;
  return undefined;
}

/**
 * Turn a response into a FeishuError, or undefined when it is a success envelope (code 0, 2xx).
 * `isWrite` marks calls whose effect may have been applied although the reply is an error
 * (a 5xx or an unreadable 2xx after a create or process).
 */
export function classifyResponse(endpoint: FeishuEndpoint, res: RawResponse, isWrite: boolean): FeishuError | undefined {
  const env = readEnvelope(res.body);
  const logId = logIdOf(res);
  const base = { endpoint, httpStatus: res.status, logId, resetSeconds: resetSecondsOf(res) };

  if (env && env.code === 0) {
    if (res.status >= 200 && res.status < 300) return undefined;
    // code 0 with an error status: trust neither; decide by status.
  }
  if (env && env.code !== 0) {
    const byCode = codeForFeishuCode(endpoint, env.code, env.msg) ?? codeForHttpStatus(res.status) ?? FeishuErrorCode.REJECTED;
    return new FeishuError(byCode, {
      ...base,
      feishuCode: env.code,
      feishuMsg: env.msg,
      mayHaveApplied: isWrite && (byCode === FeishuErrorCode.INTERNAL || byCode === FeishuErrorCode.SERVER_ERROR),
      errorRecords: byCode === FeishuErrorCode.DATA_REJECTED ? parseErrorRecords(env.msg, env.data) : undefined,
      fieldViolations: fieldViolationsOf(env),
    });
  }
  const byStatus = codeForHttpStatus(res.status) ?? FeishuErrorCode.BAD_RESPONSE;
  return new FeishuError(byStatus, {
    ...base,
    feishuCode: env?.code,
    causeText: env ? undefined : 'response body is not a Feishu envelope',
    // A 5xx from a proxy, or a 2xx we cannot read, may follow a stored write.
    mayHaveApplied: isWrite && (byStatus === FeishuErrorCode.SERVER_ERROR || byStatus === FeishuErrorCode.BAD_RESPONSE),
  });
}

/** Error codes of Node / got that mean the request never reached the server. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

/**
 * Turn a thrown got / Node error into a FeishuError. Only the error's code and class name
 * are kept: its message may include the URL and its `options` hold the Authorization header.
 */
export function classifyThrown(endpoint: FeishuEndpoint, err: unknown, isWrite: boolean): FeishuError {
  const e = err as { name?: unknown; code?: unknown; event?: unknown } | null;
  const name = typeof e?.name === 'string' ? e.name : 'Error';
  const code = typeof e?.code === 'string' ? e.code : undefined;
  if (name === 'TimeoutError') {
    const event = typeof e?.event === 'string' ? e.event : 'request';
    return new FeishuError(FeishuErrorCode.TIMEOUT, {
      endpoint,
      causeText: `timeout (${event})`,
      // A connect or lookup timeout happens before anything was sent.
      mayHaveApplied: isWrite && event !== 'lookup' && event !== 'connect',
    });
  }
  return new FeishuError(FeishuErrorCode.NETWORK, {
    endpoint,
    causeText: `${name}${code ? ` ${code}` : ''}`,
    mayHaveApplied: isWrite && !(code !== undefined && NOT_SENT_CODES.has(code)),
  });
}
