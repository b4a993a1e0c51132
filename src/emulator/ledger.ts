import { DateTime } from 'luxon';
import { KIND_ARRAY, KINDS, type Kind } from '../kinds.js';

/** One accepted approval item, as the emulator stores it. */
export interface LedgerEntry {
  readonly approvalId: string;
  readonly kind: Kind;
  readonly userId: string;
  readonly date: string;
  readonly idempotentId: string | null;
  /** The item as echoed in the create response. */
  readonly item: Record<string, unknown>;
  /** 2 approved, 4 revoked. */
  status: number;
  readonly createdAt: number;
  revokedAt: number | null;
}

/** The accepted records, their idempotency index and their status changes. */
export class Ledger {
  private entries = new Map<string, LedgerEntry>();
  private byIdempotent = new Map<string, { approvalIds: string[]; response: unknown }>();
  private posts = new Map<string, number>();
  private nextId = 7_300_000_000_000_000_000n;

  reset(): void {
    this.entries.clear();
    this.byIdempotent.clear();
    this.posts.clear();
  }

  newApprovalId(): string {
    this.nextId += 1n + BigInt(Math.floor(Math.random() * 1000));
    return this.nextId.toString();
  }

  countPost(idempotentId: string): void {
    this.posts.set(idempotentId, (this.posts.get(idempotentId) ?? 0) + 1);
  }

  findIdempotent(idempotentId: string): { approvalIds: string[]; response: unknown } | undefined {
    return this.byIdempotent.get(idempotentId);
  }

  add(entry: LedgerEntry): void {
    this.entries.set(entry.approvalId, entry);
  }

  rememberResponse(idempotentIds: readonly string[], approvalIds: readonly string[], response: unknown): void {
    for (const k of idempotentIds) this.byIdempotent.set(k, { approvalIds: [...approvalIds], response });
  }

  /** Remove an entry (a record Feishu lost, or never stored): returns whether it existed. */
  delete(approvalId: string): boolean {
    return this.entries.delete(approvalId);
  }

  get(approvalId: string): LedgerEntry | undefined {
    return this.entries.get(approvalId);
  }

  all(): LedgerEntry[] {
    return [...this.entries.values()];
  }

  postCounts(): Record<string, number> {
    return Object.fromEntries(this.posts);
  }

  /**
   * Query semantics (§5.1): PeriodTime selects items whose span overlaps [from, to];
   * CreateTime selects items created in it (dates in the emulator's zone); grouped by
   * (user_id, date).
   */
  query(q: { userIds: readonly string[]; from: number; to: number; type: string; status: number; revokedStatus?: number; timeZone: string }): Array<Record<string, unknown>> {
    const users = new Set(q.userIds);
    const groups = new Map<string, Record<string, unknown>>();
    for (const e of this.entries.values()) {
      // A revoked item (stored as 4) shows under the status the query labels revoked.
      const shown = e.status === 4 ? (q.revokedStatus ?? 4) : e.status;
      if (!users.has(e.userId) || shown !== q.status) continue;
      let lo: number;
      let hi: number;
      if (q.type === 'CreateTime') {
        lo = hi = Number(DateTime.fromMillis(e.createdAt, { zone: q.timeZone }).toFormat('yyyyMMdd'));
      } else {
        lo = Number(String(e.item.start_time ?? '').slice(0, 10).replace(/-/g, ''));
        hi = Number(String(e.item.end_time ?? '').slice(0, 10).replace(/-/g, ''));
      }
      if (hi < q.from || lo > q.to) continue;
      const key = `${e.userId}\u0000${e.date}`;
      const g = groups.get(key) ?? { user_id: e.userId, date: e.date, time_zone: q.timeZone };
      const arr = KIND_ARRAY[e.kind];
      g[arr] = [...((g[arr] as unknown[] | undefined) ?? []), { ...e.item, approval_id: e.approvalId }];
      groups.set(key, g);
    }
    return [...groups.values()];
  }
}

/** The kind whose array holds an item, for each array of a user_approval. */
export const ARRAY_KIND: Readonly<Record<string, Kind>> = Object.freeze(Object.fromEntries(KINDS.map((k) => [KIND_ARRAY[k], k])));
