/** The console's words in English and Chinese. */

export const LANGS = ['en', 'zh'] as const;
export type Lang = (typeof LANGS)[number];

const en = {
  title: 'attendance-sync console',
  overview: 'Overview',
  problems: 'Problems',
  record: 'Record',
  health: 'Health',
  healthy: 'healthy',
  unhealthy: 'unhealthy',
  process: 'This process',
  leader: 'leader',
  standby: 'standby (waiting for the lock)',
  lockHolder: 'Leader lock',
  lockFree: 'free',
  heartbeat: 'heartbeat',
  kinds: 'Per kind',
  kind: 'kind',
  watermark: 'watermark',
  lag: 'lag',
  outbox: 'outbox',
  outboxDepth: 'Outbox depth (pending + sending)',
  quota: 'Feishu quota this month',
  quotaNoLimit: 'no feishu.monthly_quota set',
  callsUsed: 'calls used',
  of: 'of',
  left: 'left',
  cycles: 'Last cycles (24 h)',
  cyclesRecords: 'records read (per 15 min)',
  cyclesDuration: 'longest cycle (s, per 15 min)',
  noCycles: 'no cycle in the last 24 hours',
  held: 'creates held by a failed or dead revoke of the version before them',
  latestProblems: 'See the problems',
  status: 'status',
  allStatuses: 'failed, dead, invalid',
  all: 'all',
  code: 'Feishu code',
  employee: 'employee or source key',
  employeeCol: 'employee',
  filter: 'Filter',
  sourceKey: 'source key',
  dates: 'dates',
  meaning: 'meaning',
  todo: 'what to do',
  attempts: 'attempts',
  lastError: 'last error',
  message: 'message',
  action: 'action',
  retry: 'Retry',
  next: 'Next page',
  first: 'First page',
  none: 'none',
  noProblems: 'No failed, dead or invalid records match.',
  notFound: 'No such record in the sync table.',
  current: 'Current state',
  state: 'state',
  version: 'version',
  versions: 'Versions seen',
  payload: 'mapped payload',
  reasons: 'reasons',
  operations: 'operations',
  operation: 'operation',
  idempotentId: 'idempotent_id',
  approvalId: 'approval_id',
  created: 'created',
  updated: 'updated',
  sent: 'sent',
  lookup: 'Latest Feishu lookup',
  noLookup: 'none was needed (every answer was definite)',
  lookupBy: 'searched by',
  lookupStatuses: 'under statuses',
  lookupFound: 'found, status',
  lookupNotFound: 'not found',
  firstSeen: 'first seen',
  token: 'Action token',
  tokenHint: 'Actions need the console token (Authorization: Bearer). It stays in this tab only.',
  readOnly: 'Read-only: set console.token (or ATTENDANCE_SYNC_CONSOLE_TOKEN) to enable retry here.',
  retryDone: 'Queued again',
  retryFailed: 'Retry refused',
  truncated: 'Only the first 500 operations are shown.',
  language: '中文',
  generated: 'UTC times',
  counts: 'counts by status',
} as const;

type Dict = { readonly [K in keyof typeof en]: string };

const zh: Dict = {
  title: 'attendance-sync 控制台',
  overview: '概览',
  problems: '问题记录',
  record: '记录',
  health: '健康状态',
  healthy: '正常',
  unhealthy: '异常',
  process: '本进程',
  leader: '主节点（leader）',
  standby: '备用（等待锁）',
  lockHolder: '主节点锁',
  lockFree: '空闲',
  heartbeat: '心跳',
  kinds: '按类型',
  kind: '类型',
  watermark: '水位',
  lag: '延迟',
  outbox: '待发送',
  outboxDepth: '待发送队列（pending + sending）',
  quota: '本月飞书调用额度',
  quotaNoLimit: '未设置 feishu.monthly_quota',
  callsUsed: '次调用已用',
  of: '共',
  left: '剩余',
  cycles: '最近周期（24 小时）',
  cyclesRecords: '读取的记录数（每 15 分钟）',
  cyclesDuration: '最长周期耗时（秒，每 15 分钟）',
  noCycles: '最近 24 小时没有周期',
  held: '个新建因前一版本的撤销失败而暂缓',
  latestProblems: '查看问题记录',
  status: '状态',
  allStatuses: 'failed、dead、invalid',
  all: '全部',
  code: '飞书错误码',
  employee: '员工或源记录键',
  employeeCol: '员工',
  filter: '筛选',
  sourceKey: '源记录键',
  dates: '日期',
  meaning: '含义',
  todo: '处理方法',
  attempts: '尝试次数',
  lastError: '最近错误时间',
  message: '消息',
  action: '操作',
  retry: '重试',
  next: '下一页',
  first: '第一页',
  none: '无',
  noProblems: '没有符合条件的 failed、dead 或 invalid 记录。',
  notFound: '同步表中没有该记录。',
  current: '当前状态',
  state: '状态',
  version: '版本',
  versions: '出现过的版本',
  payload: '映射后的请求',
  reasons: '原因',
  operations: '操作',
  operation: '操作',
  idempotentId: 'idempotent_id',
  approvalId: 'approval_id',
  created: '创建',
  updated: '更新',
  sent: '发送',
  lookup: '最近一次飞书查询',
  noLookup: '无需查询（每次回复都很明确）',
  lookupBy: '查询依据',
  lookupStatuses: '查询状态',
  lookupFound: '已找到，状态',
  lookupNotFound: '未找到',
  firstSeen: '首次出现',
  token: '操作令牌',
  tokenHint: '操作需要控制台令牌（Authorization: Bearer），只保存在当前标签页。',
  readOnly: '只读：设置 console.token（或 ATTENDANCE_SYNC_CONSOLE_TOKEN）后可在此重试。',
  retryDone: '已重新排队',
  retryFailed: '重试被拒绝',
  truncated: '只显示前 500 个操作。',
  language: 'English',
  generated: '时间均为 UTC',
  counts: '各状态数量',
};

export type Words = Dict;
export const WORDS: Readonly<Record<Lang, Words>> = Object.freeze({ en, zh });

/**
 * The page's language: `?lang=` first (the switch link), then the `lang` cookie it sets, then
 * the browser's Accept-Language (the first of zh or en it names, by weight), else English.
 */
export function pickLang(query: string | null, cookie: string | undefined, acceptLanguage: string | undefined): Lang {
  if (query === 'zh' || query === 'en') return query;
  const fromCookie = /(?:^|;\s*)lang=(zh|en)\b/.exec(cookie ?? '')?.[1];
  if (fromCookie === 'zh' || fromCookie === 'en') return fromCookie;
  const ranked = (acceptLanguage ?? '')
    .split(',')
    .map((part, i) => {
      const [tag, ...params] = part.trim().toLowerCase().split(';');
      const q = params.map((p) => /^\s*q=([\d.]+)/.exec(p)?.[1]).find((x) => x !== undefined);
      return { tag: tag ?? '', q: q === undefined ? 1 : Number(q), i };
    })
    .filter((x) => x.tag && x.q > 0)
    .sort((a, b) => b.q - a.q || a.i - b.i);
  for (const r of ranked) {
    if (r.tag.startsWith('zh')) return 'zh';
    if (r.tag.startsWith('en')) return 'en';
  }
  return 'en';
}
