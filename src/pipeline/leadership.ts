/**
 * The leader lock of a state database, as the commands that send hold it: take it, keep its
 * lease, name who holds it when it is taken. The lock itself is `state/lock.ts`'s.
 */
export { createLeaderLock, keepLease, lockHolder, type LeaderLock, type LockHolder } from '../state/lock.js';
