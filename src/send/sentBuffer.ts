import type { Knex } from 'knex';
import type { StateTables } from '../state/tables.js';
import { markSentMany } from '../state/outbox.js';

const SENT_BATCH = 64;
const SENT_FLUSH_MS = 1_000;

/** Successes waiting to be written: one UPDATE per batch instead of one per call. */
export class SentBuffer {
  private items: Array<{ id: number; approvalId: string | null }> = [];
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Knex,
    private readonly t: StateTables,
    private readonly owner: string,
  ) {}

  async add(id: number, approvalId: string | null): Promise<void> {
    this.items.push({ id, approvalId });
    if (this.items.length >= SENT_BATCH) await this.flush();
    else this.timer ??= setTimeout(() => void this.flush().catch(() => undefined), SENT_FLUSH_MS);
  }

  /** Write what is buffered; concurrent callers wait for the same writes, in order. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const items = this.items;
    this.items = [];
    if (items.length > 0) this.writing = this.writing.then(() => markSentMany(this.db, this.t, items, { owner: this.owner }).then(() => undefined));
    return this.writing;
  }
}
