import { KIND_ARRAY, KINDS, type Kind } from '../kinds.js';
import { FeishuError, FeishuErrorCode, logIdOf, type FeishuEndpoint, type RawResponse } from './errors.js';
import type { ItemFields, QueriedUserApproval, QueryUserApprovalsResult, UserApprovalInput } from './clientTypes.js';

/* Reading Feishu's replies: the created id, a query page, a revoke's status. */

export function singleItem(ua: UserApprovalInput): { kind: Kind; item: ItemFields } {
  const found: Array<{ kind: Kind; item: ItemFields }> = [];
  for (const kind of KINDS) for (const item of ua[KIND_ARRAY[kind]] ?? []) found.push({ kind, item });
  if (found.length !== 1) throw new TypeError(`createUserApproval: expected exactly one item, got ${found.length} (feishu-api.md §7.6)`);
  return found[0]!;
}

export function badResponse(endpoint: FeishuEndpoint, res: RawResponse, what: string, isWrite: boolean): FeishuError {
  return new FeishuError(FeishuErrorCode.BAD_RESPONSE, { endpoint, httpStatus: res.status, logId: logIdOf(res), causeText: what, mayHaveApplied: isWrite });
}

export function dataOf(res: RawResponse): Record<string, unknown> | undefined {
  const data = (res.body as { data?: unknown } | undefined)?.data;
  return typeof data === 'object' && data !== null ? (data as Record<string, unknown>) : undefined;
}

export function parseCreatedId(res: RawResponse, kind: Kind, idempotentId: string): string {
  const data = dataOf(res);
  // The current page returns one `user_approval`; an older one showed `user_approvals: [...]`.
  const containers = [data?.user_approval, ...(Array.isArray(data?.user_approvals) ? data.user_approvals : [])];
  for (const c of containers) {
    const items = (c as Record<string, unknown> | undefined)?.[KIND_ARRAY[kind]];
    if (!Array.isArray(items)) continue;
    const typed = items as ItemFields[];
    const hit = typed.find((i) => i.idempotent_id === idempotentId) ?? (typed.length === 1 ? typed[0] : undefined);
    if (typeof hit?.approval_id === 'string' && hit.approval_id !== '') return hit.approval_id;
  }
  // Success code without an approval_id: the record is probably stored; the lookup will tell.
  throw badResponse('create', res, 'create response without approval_id', true);
}

export function parseQuery(res: RawResponse): QueryUserApprovalsResult {
  const data = dataOf(res);
  const list = data?.user_approvals ?? [];
  if (!Array.isArray(list)) throw badResponse('query', res, 'query response without user_approvals', false);
  return { user_approvals: list as QueriedUserApproval[] };
}

/**
 * The status a revoke left the approval in. Only a reply that says withdrawn (4, or 3 in the
 * process response's own labels) confirms it: a reply without a status, or with another one,
 * is an error, so the revoke is retried and, if refused then, confirmed by a lookup.
 */
export function parseProcessStatus(res: RawResponse): number {
  const info = dataOf(res)?.approval_info as { status?: unknown } | undefined;
  const status = info?.status;
  if (typeof status !== 'number') throw badResponse('process', res, 'process response without approval_info.status', true);
  if (status !== 4 && status !== 3) throw badResponse('process', res, `process response with approval_info.status ${status}: the approval is not withdrawn`, true);
  return status;
}

export function ambiguous(original: FeishuError, why: string): FeishuError {
  return new FeishuError(FeishuErrorCode.AMBIGUOUS, {
    endpoint: original.endpoint,
    httpStatus: original.httpStatus,
    feishuCode: original.feishuCode,
    feishuMsg: original.feishuMsg,
    logId: original.logId,
    mayHaveApplied: true,
    causeText: why,
  });
}
