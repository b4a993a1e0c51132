import { CODE_CATEGORY, FeishuErrorCode, type FeishuCategory } from './errors.js';

/**
 * What each Feishu answer means for an operator and what to do about it: the one source of
 * the README's "Feishu error codes" table (a test checks the README holds exactly what
 * `renderCodeTable` prints) and of the console's Problems and Record pages.
 */

export interface Text {
  readonly en: string;
  readonly zh: string;
}

export interface CodeExplanation {
  /** The code cell of the README table (markdown). */
  readonly label: string;
  /** Body codes this row covers. */
  readonly codes: readonly number[];
  /** For a catch-all code: the row applies when Feishu's msg contains this (case-insensitive). */
  readonly msg?: string;
  /** Our stable error codes this row covers when no body code was stored (timeouts, 5xx). */
  readonly errorCodes?: readonly FeishuErrorCode[];
  readonly meaning: Text;
  readonly todo: Text;
}

export const CODE_EXPLANATIONS: readonly CodeExplanation[] = Object.freeze([
  {
    label: '99991400',
    codes: [99991400, 1000004, 1000005],
    errorCodes: [FeishuErrorCode.RATE_LIMITED],
    meaning: { en: 'rate limited', zh: '触发频率限制' },
    todo: {
      en: 'nothing: the worker waits for `x-ogw-ratelimit-reset`; lower `feishu.rate_limit` if it keeps happening',
      zh: '无需处理：程序按 `x-ogw-ratelimit-reset` 等待；频繁出现时调低 `feishu.rate_limit`',
    },
  },
  {
    label: '99991663, 99991664, 99991665, 1220002',
    codes: [99991663, 99991664, 99991665, 99991671, 1220002],
    errorCodes: [FeishuErrorCode.TOKEN_INVALID],
    meaning: { en: 'token invalid or expired', zh: '访问凭证无效或已过期' },
    todo: { en: 'refreshed automatically; if it persists, check the app', zh: '会自动刷新；持续出现时检查应用' },
  },
  {
    label: '10003, 10014, 10015, 99991543',
    codes: [10003, 10014, 10015, 99991543, 99991661, 99991662, 99991668, 99991677],
    errorCodes: [FeishuErrorCode.CONFIG, FeishuErrorCode.AUTH],
    meaning: { en: 'app id / secret wrong, app disabled', zh: '应用 ID / 密钥错误，或应用已停用' },
    todo: { en: 'fix the credentials; sending stops until they work', zh: '修正凭证；修好之前停止发送' },
  },
  {
    label: '99991672',
    codes: [99991672],
    errorCodes: [FeishuErrorCode.SCOPE_MISSING],
    meaning: { en: 'the app lacks a scope', zh: '应用缺少权限' },
    todo: { en: 'add `attendance:task` / `attendance:task:readonly`, publish a version', zh: '添加 `attendance:task` / `attendance:task:readonly` 权限并发布版本' },
  },
  {
    label: '99991401',
    codes: [99991401],
    meaning: { en: "IP not in the app's allow-list", zh: 'IP 不在应用白名单中' },
    todo: { en: "add the worker's address", zh: '把本程序所在机器的地址加入白名单' },
  },
  {
    label: '99991403',
    codes: [99991403],
    errorCodes: [FeishuErrorCode.QUOTA_EXCEEDED],
    meaning: { en: 'monthly API quota used up (HTTP 429)', zh: '本月 API 调用额度已用完（HTTP 429）' },
    todo: { en: 'sending pauses, nothing fails; see [Monthly quota](#monthly-quota)', zh: '暂停发送，不会失败；见 README 的 Monthly quota' },
  },
  {
    label: '1220001',
    codes: [1220001],
    errorCodes: [FeishuErrorCode.PARAM_INVALID],
    meaning: { en: 'a parameter was refused', zh: '参数被拒绝' },
    todo: { en: 'the message names the field; fix the mapping, then `retry`', zh: '消息中写明了字段；修正映射后 `retry`' },
  },
  {
    label: '1220004',
    codes: [1220004],
    errorCodes: [FeishuErrorCode.USER_NOT_FOUND],
    meaning: { en: 'user does not exist / out of scope, or "API 接入" not done', zh: '用户不存在或不在数据范围内，或未完成「API 接入」' },
    todo: { en: 'check `employee_type` and the user; finish API 接入', zh: '检查 `employee_type` 和该用户；完成 API 接入' },
  },
  {
    label: '1220005',
    codes: [1220005],
    errorCodes: [FeishuErrorCode.NO_PERMISSION],
    meaning: { en: 'no data permission', zh: '没有数据权限' },
    todo: { en: "widen the app's data scope in the attendance admin console", zh: '在考勤管理后台扩大应用的数据范围' },
  },
  {
    label: '1220600 `the attendance result has been sealed…`',
    codes: [1220600],
    msg: 'sealed',
    errorCodes: [FeishuErrorCode.SEALED],
    meaning: { en: 'the period is archived (封账)', zh: '该考勤周期已封账' },
    todo: { en: 'unseal in the admin console, then `retry`', zh: '在管理后台解除封账，然后 `retry`' },
  },
  {
    label: '1220600 `no row affected`',
    codes: [1220600],
    msg: 'no row affected',
    errorCodes: [FeishuErrorCode.NO_ROW_AFFECTED],
    meaning: { en: 'optimistic-lock conflict', zh: '乐观锁冲突' },
    todo: { en: 'retried automatically', zh: '会自动重试' },
  },
  {
    label: '1220600 `the object already exists`',
    codes: [1220600],
    msg: 'the object already exists',
    errorCodes: [FeishuErrorCode.DUPLICATE],
    meaning: { en: 'the idempotency key was seen before', zh: '幂等键已被使用过' },
    todo: { en: 'resolved automatically by looking the record up', zh: '会通过查询该记录自动解决' },
  },
  {
    label: '1225001',
    codes: [1225001],
    errorCodes: [FeishuErrorCode.DATA_REJECTED],
    meaning: { en: 'Feishu rejected the record (its error records are in the message)', zh: '飞书拒绝了该记录（错误明细见消息）' },
    todo: { en: 'read the message, fix the row or the mapping, then `retry`', zh: '阅读消息，修正源数据或映射，然后 `retry`' },
  },
  {
    label: '1225000, 1226000, 1227500, 5xx, timeouts',
    codes: [1225000, 1226000, 1226500, 1227500],
    errorCodes: [FeishuErrorCode.INTERNAL, FeishuErrorCode.SERVER_ERROR, FeishuErrorCode.TIMEOUT, FeishuErrorCode.NETWORK, FeishuErrorCode.BAD_RESPONSE, FeishuErrorCode.AMBIGUOUS],
    meaning: { en: 'Feishu-side trouble', zh: '飞书侧故障' },
    todo: { en: 'retried with backoff; `dead` after the last attempt', zh: '按退避重试；最后一次失败后变为 `dead`' },
  },
] satisfies CodeExplanation[]);

/** What an invalid source row (never sent) means. */
export const INVALID_EXPLANATION: Pick<CodeExplanation, 'meaning' | 'todo'> = Object.freeze({
  meaning: { en: 'the source row cannot be mapped (the reasons are listed)', zh: '源数据行无法映射（原因已列出）' },
  todo: { en: 'fix the row or the mapping; the next cycle reads it again', zh: '修正源数据或映射；下一周期会重新读取' },
});

const BY_CATEGORY: Record<FeishuCategory, Pick<CodeExplanation, 'meaning' | 'todo'>> = {
  transient: CODE_EXPLANATIONS.at(-1)!,
  ambiguous: CODE_EXPLANATIONS.at(-1)!,
  rate_limited: CODE_EXPLANATIONS[0]!,
  auth: CODE_EXPLANATIONS[2]!,
  quota: CODE_EXPLANATIONS[5]!,
  duplicate: CODE_EXPLANATIONS[11]!,
  permanent: {
    meaning: { en: 'Feishu refused the record', zh: '飞书拒绝了该记录' },
    todo: { en: 'read the message, fix the cause, then `retry`', zh: '阅读消息，修正原因后 `retry`' },
  },
};

/**
 * The row for a stored outcome: the body code (with Feishu's msg for catch-all codes) first,
 * then our error code, then the error code's category. undefined when nothing is known.
 */
export function explainCode(o: { feishuCode?: number | null; errorCode?: string | null; msg?: string | null }): Pick<CodeExplanation, 'meaning' | 'todo'> | undefined {
  const msg = (o.msg ?? '').toLowerCase();
  if (o.feishuCode !== null && o.feishuCode !== undefined && o.feishuCode !== 0) {
    const rows = CODE_EXPLANATIONS.filter((r) => r.codes.includes(o.feishuCode!));
    const byMsg = rows.find((r) => r.msg !== undefined && msg.includes(r.msg));
    const plain = rows.find((r) => r.msg === undefined);
    if (byMsg ?? plain) return byMsg ?? plain;
  }
  if (o.errorCode) {
    const row = CODE_EXPLANATIONS.find((r) => r.errorCodes?.includes(o.errorCode as FeishuErrorCode));
    if (row) return row;
    const category = CODE_CATEGORY[o.errorCode as FeishuErrorCode] as FeishuCategory | undefined;
    if (category) return BY_CATEGORY[category];
  }
  return undefined;
}

/** The README's table (English), exactly as committed. */
export function renderCodeTable(): string {
  const lines = ['| code | meaning | what to do |', '|---|---|---|'];
  for (const r of CODE_EXPLANATIONS) lines.push(`| ${r.label} | ${r.meaning.en} | ${r.todo.en} |`);
  return lines.join('\n') + '\n';
}
