import type { Knex } from 'knex';
import type { StateTables } from '../../src/state/tables.js';

/**
 * Time for tests without waiting for it.
 *
 * `testClock` runs with the wall clock plus an offset that `advance` moves: pass `now` where a
 * module takes a clock (e.g. `PipelineDeps.now`). `expireLeases` is the same for a state database
 * another process wrote: every lease (the leader lock and the claimed operations) ends now, as
 * it would once the lease time had passed.
 */
export interface TestClock {
  now: () => number;
  advance: (ms: number) => void;
}

export function testClock(): TestClock {
  let offset = 0;
  return {
    now: () => Date.now() + offset,
    advance: (ms) => {
      offset += ms;
    },
  };
}

/** Let the leases a killed process held run out: the leader lock and the operations it had claimed. */
export async function expireLeases(db: Knex, t: StateTables): Promise<{ lock: number; operations: number }> {
  const past = Date.now() - 1;
  const lock = await db(t.lock).where('lease_until', '>', past).update({ lease_until: past });
  const operations = await db(t.syncRecords).whereNotNull('lease_until').andWhere('lease_until', '>', past).update({ lease_until: past });
  return { lock, operations };
}
