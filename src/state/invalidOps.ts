import type { Knex } from 'knex';
import type { StateTables } from './tables.js';
import { chunks } from './records.js';
import { updateOperations } from './outbox/counts.js';
import { OP_STATUS } from './outbox/operation.js';

/*
 * Invalid rows in the sync table are the record's current problem, not its history: once the
 * record maps (or is judged again with other reasons) the earlier invalid row is superseded,
 * so counts and "latest errors" show what needs fixing now.
 */

/** Invalid rows whose record has since been fixed or judged again: superseded. */
export async function supersedeInvalid(trx: Knex, t: StateTables, ids: readonly number[], now = Date.now()): Promise<void> {
  for (const part of chunks(ids)) {
    await updateOperations(trx, t, (q) => q.whereIn('id', part).where('status', OP_STATUS.INVALID), { status: OP_STATUS.SUPERSEDED, updated_at: now });
  }
}

/** The same problem back again (its row exists from before): invalid once more. */
export async function reopenInvalid(trx: Knex, t: StateTables, ids: readonly number[], now = Date.now()): Promise<void> {
  for (const part of chunks(ids)) {
    await updateOperations(trx, t, (q) => q.whereIn('id', part).where('status', OP_STATUS.SUPERSEDED), { status: OP_STATUS.INVALID, updated_at: now });
  }
}
