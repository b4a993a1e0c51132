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
  /** What a repeated idempotent_id gets: an error (1220600 "the object already exists") or the original answer. */
  duplicateIdempotentId: 'conflict' | 'replay';
  /** What revoking an item that is not approved gets. */
  revokeTwice: 'error' | 'ok';
  /**
   * The answer to a revoke (process). `full` as documented; `no-status` applies the revoke and
   * answers code 0 without approval_info.status; `no-status-unapplied` answers the same and
   * changes nothing. The documentation does not say this never happens.
   */
  revokeReply: 'full' | 'no-status' | 'no-status-unapplied';
  /** Fault probabilities per attendance call, e.g. `5xx=0.02,drop=0.02,stored-then-failed=0.02`. */
  faults: FaultSpec;
  seed: number;
  /** Delay of a `slow` fault, ms (longer than the client's timeout). */
  slowMs: number;
  /** Fixed delay before every attendance answer, ms. */
  latencyMs: number;
  /** Known user ids; when set, others get 1220004. */
  users: readonly string[] | null;
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

export const FAULT_KINDS = Object.freeze(['5xx', '502', 'slow', 'drop', '429', 'stored-then-failed', 'no-row-affected', 'quota'] as const);
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
  faults: {},
  seed: 1,
  slowMs: 15_000,
  latencyMs: 0,
  users: null,
  sealedUntil: null,
  timeZone: 'Asia/Shanghai',
  clock: () => Date.now(),
  clockOffsetMs: 0,
  monthlyQuota: null,
});

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
