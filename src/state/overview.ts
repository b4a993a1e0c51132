/**
 * The read model of `status --all`: per configuration, who holds the lock, the last cycles
 * and the operations per kind and status. Reads only; the CLI may import it.
 */
export { lockHolder, type LockHolder } from './lock.js';
export { lastRuns } from './runs.js';
export { statusCounts } from './outbox.js';
