/** Everything that shapes the emulator's behaviour; all of it can be changed at run time. */
export interface EmulatorOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  appId: string;
  appSecret: string;
  /** Attendance calls per (app, endpoint) in each one-second window. */
  rateLimit: number;
  /** HTTP status of throttled answers: 429 (current APIs) or 400 (older APIs). */
  rateLimitHttpStatus: 429 | 400;
  /** Lifetime of a new tenant_access_token, seconds (Feishu: 7200). */
  tokenTtlSeconds: number;
  /** HTTP status of token errors (Feishu: 400; 200 reproduces reports of HTTP 200). */
  tokenErrorHttpStatus: number;
  /** uniq_id must be shorter than 14 characters (the documentation's own sample breaks it). */
  strict: boolean;
  /**
   * What a repeated idempotent_id gets: an error (1220600 "the object already exists"), the
   * same error with the existing item in `data` (as Feishu People's sibling endpoint does), or
   * the original answer again.
   */
  duplicateIdempotentId: 'conflict' | 'conflict-with-data' | 'replay';
  /** What revoking an item that is not approved gets. */
  revokeTwice: 'error' | 'ok';
  /**
   * The answer to a revoke (process). `full` as documented; `no-status` applies the revoke and
   * answers code 0 without approval_info.status; `no-status-unapplied` answers the same and
   * changes nothing. The documentation does not say this never happens.
   */
  revokeReply: 'full' | 'no-status' | 'no-status-unapplied';
  /**
   * The query status a revoked leave or overtime appears under: 4 (the process page's 已撤回)
   * or 3 (the query page's 已撤回). Outs and trips follow the same setting.
   */
  revokedStatus: 3 | 4;
  /**
   * How "check_date_to no more than 30 days after check_date_from" is counted: `exclusive`
   * allows to − from ≤ 30; `inclusive` counts both ends as days, so to − from ≤ 29.
   */
  queryWindow: 'exclusive' | 'inclusive';
  /** Which query date the today + 1 cap applies to: `to` (the stricter reading) or `from` (as documented). */
  queryCapOn: 'to' | 'from';
  /** Most `user_ids` in one query (undocumented; every sibling endpoint caps at 50). */
  maxQueryUsers: number;
  /** False: the tenant never finished "API 接入"; every attendance call gets 1220004. */
  apiAccess: boolean;
  /** False: the app is disabled; every attendance call gets 99991662 "app not in use". */
  appInUse: boolean;
  /** Departed users: query returns their times in UTC+0 with an empty `time_zone`. */
  departedUsers: readonly string[];
  /** Require all three i18n_names (ch, en, ja), as the old Lark page marks them. */
  i18nNamesRequired: boolean;
  /** A leave overlapping an approved leave of the same user: accepted, or refused (WeCom refuses). */
  overlappingLeaves: 'accept' | 'refuse';
  /** Echo `leave_detail_range_objs` on leaves in create and query responses (the SDK's types have it). */
  echoLeaveDetailRanges: boolean;
  /** Leave `interval` in query results: present, or left out ("暂未开放提供"). */
  queryInterval: 'provided' | 'omitted';
  /** Fault probabilities per attendance call, e.g. `5xx=0.02,drop=0.02,stored-then-failed=0.02,1000004=0.01`. */
  faults: FaultSpec;
  seed: number;
  /** Delay of a `slow` fault, ms (longer than the client's timeout). */
  slowMs: number;
  /** Fixed delay before every attendance answer, ms. */
  latencyMs: number;
  /** Known user ids; when set, others get 1220004 (without it, the directory's ids when it has any). */
  users: readonly string[] | null;
  /**
   * The tenant's user directory, for contact/v3/users/batch_get_id: who has which e-mail and
   * mobile, and who has resigned. `open_id` defaults to `ou_` + user_id.
   */
  directory: readonly DirectoryUser[];
  /** contact/v3/users/batch_get_id calls per second and per minute (Feishu: 50 and 1,000). */
  contactRateLimit: { perSecond: number; perMinute: number };
  /** Dates (yyyyMMdd) before this are sealed: creates and revokes of them get 1220600 "…sealed…". */
  sealedUntil: string | null;
  /** The zone of the response `time_zone` and of "today". */
  timeZone: string;
  /** Injectable clock (ms since epoch). */
  clock: () => number;
  /**
   * Added to the clock, ms: the emulator's "now" for stored creation times and the query's
   * today + 1 cap. Settable at run time, so a rehearsal can make days pass in Feishu.
   */
  clockOffsetMs: number;
  /**
   * Successful attendance calls allowed per calendar month (in `timeZone`, on the emulator's
   * clock); over it every attendance call gets HTTP 429 with 99991403. Failed calls and token
   * calls do not count, as on Feishu's Basic plan. null: no quota.
   */
  monthlyQuota: number | null;
}

export interface DirectoryUser {
  user_id: string;
  open_id?: string;
  email?: string;
  mobile?: string;
  resigned?: boolean;
}

/**
 * `1000004` / `1000005`: the generic code list's "method rate limited" and "app rate limited"
 * (HTTP 400, no reset header), throttling like 99991400.
 */
export const FAULT_KINDS = Object.freeze(['5xx', '502', 'slow', 'drop', '429', '1000004', '1000005', 'stored-then-failed', 'no-row-affected', 'quota'] as const);
export type FaultKind = (typeof FAULT_KINDS)[number];
export type FaultSpec = Partial<Record<FaultKind, number>>;

export const DEFAULT_OPTIONS: Readonly<EmulatorOptions> = Object.freeze({
  host: '127.0.0.1',
  port: 0,
  appId: 'cli_emulator',
  appSecret: 'emulator-secret',
  rateLimit: 50,
  rateLimitHttpStatus: 429,
  tokenTtlSeconds: 7200,
  tokenErrorHttpStatus: 400,
  strict: false,
  duplicateIdempotentId: 'conflict',
  revokeTwice: 'error',
  revokeReply: 'full',
  revokedStatus: 4,
  queryWindow: 'exclusive',
  queryCapOn: 'to',
  maxQueryUsers: 50,
  apiAccess: true,
  appInUse: true,
  departedUsers: [],
  i18nNamesRequired: false,
  overlappingLeaves: 'accept',
  echoLeaveDetailRanges: false,
  queryInterval: 'provided',
  faults: {},
  seed: 1,
  slowMs: 15_000,
  latencyMs: 0,
  users: null,
  directory: [],
  contactRateLimit: { perSecond: 50, perMinute: 1000 },
  sealedUntil: null,
  timeZone: 'Asia/Shanghai',
  clock: () => Date.now(),
  clockOffsetMs: 0,
  monthlyQuota: null,
});

/**
 * The switches for undocumented behaviours, with their values: the documented or best
 * reading first (the default), then the others.
 */
export const UNCERTAIN_SWITCHES = Object.freeze({
  revokedStatus: [4, 3],
  queryWindow: ['exclusive', 'inclusive'],
  queryCapOn: ['to', 'from'],
  duplicateIdempotentId: ['conflict', 'conflict-with-data', 'replay'],
  revokeTwice: ['error', 'ok'],
  overlappingLeaves: ['accept', 'refuse'],
  i18nNamesRequired: [false, true],
  echoLeaveDetailRanges: [false, true],
  queryInterval: ['provided', 'omitted'],
} as const);

/** Environment variable with emulator options (JSON) that replace the defaults: CI runs the suite under other readings with it. */
export const EMULATOR_OPTIONS_ENV = 'ATTENDANCE_SYNC_EMULATOR_OPTIONS';

const VALUE_CHECKS: Record<string, (v: unknown) => boolean> = {
  maxQueryUsers: (v) => Number.isInteger(v) && (v as number) > 0,
  apiAccess: (v) => typeof v === 'boolean',
  appInUse: (v) => typeof v === 'boolean',
  departedUsers: (v) => Array.isArray(v) && v.every((u) => typeof u === 'string'),
  strict: (v) => typeof v === 'boolean',
  revokeReply: (v) => v === 'full' || v === 'no-status' || v === 'no-status-unapplied',
  rateLimitHttpStatus: (v) => v === 429 || v === 400,
  tokenErrorHttpStatus: (v) => Number.isInteger(v),
};

/** Parse and check emulator options given as JSON (the environment variable, the CLI's --options); every problem names the option. */
export function parseOptionsJson(text: string, source = EMULATOR_OPTIONS_ENV): Partial<EmulatorOptions> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error(`${source}: not valid JSON`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${source}: must be a JSON object`);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    const allowed = (UNCERTAIN_SWITCHES as Record<string, readonly unknown[]>)[key];
    if (allowed) {
      if (!allowed.includes(value)) throw new Error(`${source}: ${key} must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`);
    } else if (VALUE_CHECKS[key]) {
      if (!VALUE_CHECKS[key]!(value)) throw new Error(`${source}: ${key} has an invalid value ${JSON.stringify(value)}`);
    } else {
      throw new Error(`${source}: unknown option "${key}"`);
    }
    out[key] = value;
  }
  return out as Partial<EmulatorOptions>;
}

/** Options from the environment variable; empty when it is unset. */
export function optionsFromEnv(env: NodeJS.ProcessEnv = process.env): Partial<EmulatorOptions> {
  const text = env[EMULATOR_OPTIONS_ENV];
  return text && text.trim() ? parseOptionsJson(text) : {};
}

/** Parse `5xx=0.05,drop=0.02,…`; every problem names the part it comes from. */
export function parseFaults(spec: string): FaultSpec {
  const out: FaultSpec = {};
  if (!spec.trim()) return out;
  for (const part of spec.split(',')) {
    const [name, value] = part.split('=').map((s) => s.trim());
    if (!name || !(FAULT_KINDS as readonly string[]).includes(name)) {
      throw new Error(`faults: unknown fault "${name ?? ''}" (known: ${FAULT_KINDS.join(', ')})`);
    }
    const p = Number(value);
    if (value === undefined || !Number.isFinite(p) || p < 0 || p > 1) throw new Error(`faults: ${name} needs a probability between 0 and 1`);
    out[name as FaultKind] = p;
  }
  const total = Object.values(out).reduce((a, b) => a + (b ?? 0), 0);
  if (total > 1) throw new Error(`faults: probabilities add up to ${total}, more than 1`);
  return out;
}

export { seededRandom } from '../random.js';
