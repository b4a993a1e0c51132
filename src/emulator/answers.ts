/* The emulator's answers and counters, shared by the server and its endpoints. */
import type { FaultKind } from './options.js';

export type Endpoint = 'token' | 'create' | 'query' | 'process';

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
  /** contact/v3/users/batch_get_id: calls answered, the most e-mails and mobiles in one, throttled calls. */
  contact: { calls: number; emails: number; mobiles: number; maxEmails: number; maxMobiles: number; rateLimited: number };
}

export interface Answer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Close the connection without an answer. */
  drop?: boolean;
  /** Raw text instead of JSON. */
  text?: string;
}

export const ok = (data: unknown): Answer => ({ status: 200, body: { code: 0, msg: 'success', data } });
export const fail = (status: number, code: number, msg: string, extra: Record<string, unknown> = {}): Answer => ({ status, body: { code, msg, ...extra } });
