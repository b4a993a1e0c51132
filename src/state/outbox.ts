/*
 * The outbox (the sync table): the operations to send and the history of what was sent.
 * An *operation* is one row: a create or a revoke of one version of a *record* (one source
 * row's state, records.ts). The modules under outbox/ are the table's only writers, and
 * every write goes through outbox/counts.ts, which keeps the operations per kind and status.
 */
export { OP_STATUS, OPERATION_TYPES, mayExistInFeishu, revokeOf, fromRow } from './outbox/operation.js';
export type { OpStatus, OperationType, OutboxOperation, NewOperation } from './outbox/operation.js';
export { updateOperations, deleteOperations, insertOperationRows, foldCounts, recountOperations } from './outbox/counts.js';
export { OPERATION_KEY, insertOperations, markSuperseded, findById, createsByKeys, revokedCreateIds } from './outbox/plan.js';
export { claimDue, renewLeases, releaseLeases, reclaimOrphanedLeases } from './outbox/claim.js';
export { markSent, markSentMany, markRetry, regenerateCreate, markFailed, markRevoked } from './outbox/outcome.js';
export { retryWithOutcome, retryOperations, requeueSentCreates, type RetryOutcome } from './outbox/requeue.js';
export { heldCreates, statusCounts, oldestPending, latestErrors, laterVersionSent, outboxDepth, keyStatuses, refusedCreates, type HeldCreate } from './outbox/read.js';
