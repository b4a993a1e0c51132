import type { Kind } from '../kinds.js';
import type { UserApproval } from '../feishu/schema.js';

/** A row as the source database returned it. */
export type SourceRow = Record<string, unknown>;

/**
 * Set by the extractor on a row it did not read because a mapped value is too large
 * (the row holds only its key and cursor): the reasons the row is invalid.
 */
export const ROW_PROBLEMS: unique symbol = Symbol('attendance-sync.row-problems');

export interface MapContext {
  /** Zone of zone-less source timestamps (the kind's `time_zone`, else `source.time_zone`). */
  readonly sourceTimeZone: string;
  /** The attendance group's zone: Feishu wall-clock strings are written in it. */
  readonly feishuTimeZone: string;
  /** Longest span accepted, in days (a 400-day leave is a data error). */
  readonly maxSpanDays?: number;
  /** "Now" for the plausibility window of times (ms since epoch; default: the clock). */
  readonly now?: number;
}

export type MappedRow =
  | {
      readonly outcome: 'valid';
      readonly kind: Kind;
      readonly sourceKey: string;
      /** The `user_approval` with one item, without `idempotent_id` (planning adds it). */
      readonly request: UserApproval;
      readonly version: string;
      readonly userId: string;
      readonly effectiveDate: string;
      /** What was changed on the way (a reason cut to the limit); absent when nothing was. */
      readonly warnings?: readonly string[];
    }
  | {
      readonly outcome: 'inactive';
      readonly kind: Kind;
      readonly sourceKey: string;
      readonly reason: 'cancelled' | 'not_approved' | 'deleted';
    }
  | { readonly outcome: 'invalid'; readonly kind: Kind; readonly sourceKey: string | null; readonly reasons: string[] };
