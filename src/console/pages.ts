import { DateTime } from 'luxon';
import { explainCode, INVALID_EXPLANATION } from '../feishu/codes.js';
import type { Lang, Words } from './i18n.js';
import { WORDS } from './i18n.js';
import type { CyclePoint, Operation, RecordStory } from './queries.js';
import { PROBLEM_STATUSES } from './queries.js';
import { KINDS } from '../kinds.js';

/*
 * Server-rendered pages: no framework, no external asset, one small inline style sheet and
 * script. Everything from the database is escaped.
 */

export function esc(v: unknown): string {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export const when = (ms: number | null | undefined): string => (ms ? DateTime.fromMillis(ms).toUTC().toFormat("yyyy-MM-dd HH:mm:ss'Z'") : '—');

export function duration(ms: number | null): string {
  if (ms === null) return '—';
  const s = Math.round(Math.abs(ms) / 1000);
  const sign = ms < 0 ? '-' : '';
  if (s < 120) return `${sign}${s} s`;
  if (s < 7200) return `${sign}${Math.round(s / 60)} min`;
  if (s < 172800) return `${sign}${(s / 3600).toFixed(1)} h`;
  return `${sign}${(s / 86400).toFixed(1)} d`;
}

const CSS = `
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;color:#1d2129;background:#f5f6f7}
header{display:flex;flex-wrap:wrap;gap:.25rem 1rem;align-items:center;padding:.6rem 1rem;background:#1f2329;color:#fff}
header a{color:#fff;text-decoration:none;padding:.2rem .1rem}header a[aria-current]{border-bottom:2px solid #4e83fd}
header .brand{font-weight:600;margin-right:auto}main{padding:1rem;max-width:1440px;margin:0 auto}
h1{font-size:1.3rem;margin:.2rem 0 1rem}h2{font-size:1.05rem;margin:1.2rem 0 .5rem}
section,.card{background:#fff;border:1px solid #dee0e3;border-radius:6px;padding:.75rem 1rem;margin-bottom:1rem}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:1rem}.cards .card{margin:0}
.big{font-size:1.4rem;font-weight:600}.ok{color:#00a870}.bad{color:#d54941}.muted{color:#646a73}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #eff0f1;vertical-align:top}
th{font-weight:600;color:#646a73;white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums}td.nowrap{white-space:nowrap}td.meaning{min-width:12em}td.todo{min-width:14em}
code,pre{font:12px/1.4 ui-monospace,Menlo,Consolas,monospace}pre{background:#f5f6f7;padding:.5rem;overflow-x:auto;margin:.3rem 0}
.tag{display:inline-block;padding:0 .4rem;border-radius:3px;background:#eff0f1;font-size:12px}
.tag.failed,.tag.dead{background:#fde2e2;color:#a32f28}.tag.invalid{background:#fff1d6;color:#8a5a00}.tag.sent{background:#d9f5e8;color:#006b47}
form.filters{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end}label{display:flex;flex-direction:column;font-size:12px;color:#646a73}
input,select,button{font:inherit;padding:.3rem .5rem;border:1px solid #c9cdd4;border-radius:4px;background:#fff}
button{background:#3370ff;color:#fff;border-color:#3370ff;cursor:pointer}button:disabled{opacity:.5}
output{display:block;margin-top:.4rem}svg{max-width:100%;height:auto}
@media (max-width:640px){main{padding:.5rem}th,td{padding:.3rem}.hide-s{display:none}}
`;

const SCRIPT = `
(function(){
  var f=document.getElementById('token');if(!f)return;
  f.value=sessionStorage.getItem('console-token')||'';
  f.addEventListener('input',function(){sessionStorage.setItem('console-token',f.value)});
  document.addEventListener('click',function(e){
    var b=e.target.closest&&e.target.closest('button[data-retry]');if(!b)return;
    var out=document.getElementById('action-result');b.disabled=true;
    fetch('/api/retry',{method:'POST',headers:{'content-type':'application/json','authorization':'Bearer '+f.value},
      body:JSON.stringify({status:b.dataset.status,kind:b.dataset.kind,id:b.dataset.id})})
    .then(function(r){return r.json().then(function(j){return{ok:r.ok,j:j}})})
    .then(function(x){out.textContent=(x.ok?out.dataset.done:out.dataset.failed)+': '+(x.ok?x.j.lines.join(' / '):x.j.error);out.className=x.ok?'ok':'bad';b.disabled=x.ok})
    .catch(function(err){out.textContent=String(err);out.className='bad';b.disabled=false});
  });
})();
`;

export interface PageContext {
  lang: Lang;
  /** The request's path and query, for the language switch. */
  url: URL;
  actions: boolean;
}

function layout(c: PageContext, active: 'overview' | 'problems' | 'record', title: string, body: string): string {
  const w = WORDS[c.lang];
  const other = c.lang === 'zh' ? 'en' : 'zh';
  const switchUrl = new URL(c.url.toString());
  switchUrl.searchParams.set('lang', other);
  const nav = (key: 'overview' | 'problems', href: string) => `<a href="${href}"${active === key ? ' aria-current="page"' : ''}>${esc(w[key])}</a>`;
  const actions = c.actions
    ? `<section class="actions"><label>${esc(w.token)}<input id="token" type="password" autocomplete="off" size="24"></label><div class="muted">${esc(w.tokenHint)}</div><output id="action-result" role="status" data-done="${esc(w.retryDone)}" data-failed="${esc(w.retryFailed)}"></output></section>`
    : '';
  return `<!doctype html><html lang="${c.lang === 'zh' ? 'zh-CN' : 'en'}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)} · ${esc(w.title)}</title><style>${CSS}</style></head><body>
<header><span class="brand">${esc(w.title)}</span>${nav('overview', '/')}${nav('problems', '/problems')}<a href="${esc(switchUrl.pathname + switchUrl.search)}" hreflang="${other}" id="lang-switch">${esc(w.language)}</a></header>
<main><h1>${esc(title)}</h1>${actions}${body}<p class="muted">${esc(w.generated)}</p></main>${c.actions ? `<script>${SCRIPT}</script>` : ''}</body></html>`;
}

function tag(status: string): string {
  return `<span class="tag ${esc(status)}">${esc(status)}</span>`;
}

function codeCell(o: Pick<Operation, 'feishuCode' | 'errorCode'>): string {
  const parts = [o.feishuCode ? String(o.feishuCode) : '', o.errorCode ?? ''].filter(Boolean);
  return parts.length ? `<code>${esc(parts.join(' '))}</code>` : '—';
}

function explanation(o: Pick<Operation, 'feishuCode' | 'errorCode' | 'feishuMsg' | 'status'>, lang: Lang): { meaning: string; todo: string } {
  const e = o.status === 'invalid' ? INVALID_EXPLANATION : explainCode({ feishuCode: o.feishuCode, errorCode: o.errorCode, msg: o.feishuMsg });
  return e ? { meaning: e.meaning[lang], todo: e.todo[lang] } : { meaning: '—', todo: '—' };
}

/** Inline markdown of the code table (`code` spans, [links](#…)) as HTML. */
function md(text: string): string {
  return esc(text)
    .replace(/`([^`]+)`/g, '<code>$1</code>')
    .replace(/\[([^\]]+)\]\(#[^)]+\)/g, '$1');
}

function retryButton(c: PageContext, o: Pick<Operation, 'status' | 'kind' | 'sourceKey'>): string {
  if (!c.actions || (o.status !== 'failed' && o.status !== 'dead')) return '';
  const w = WORDS[c.lang];
  return `<button type="button" data-retry data-status="${esc(o.status)}" data-kind="${esc(o.kind)}" data-id="${esc(o.sourceKey)}">${esc(w.retry)}</button>`;
}

const recordHref = (kind: string, key: string) => `/record/${encodeURIComponent(kind)}/${encodeURIComponent(key)}`;

export interface OverviewData {
  health: { ok: boolean; state?: unknown; reasons?: unknown };
  status: {
    watermarks: Array<{ kind: string; cursor: unknown; cursorAt: number | null; movedAt: number | null }>;
    counts: Record<string, Record<string, number>>;
    lock: { owner: string; heartbeatAt: number } | null;
    feishu: { quota: { month: string; used: number; limit: number | null } };
    heldTotal: number;
    oldestPending: { createdAt: number } | null;
  };
  cycles: CyclePoint[];
  now: number;
}

function chart(points: CyclePoint[], value: (p: CyclePoint) => number, label: string, color: string): string {
  const W = 480;
  const H = 90;
  const max = Math.max(1, ...points.map(value));
  const bw = W / Math.max(points.length, 1);
  const bars = points
    .map((p, i) => {
      const h = Math.max(1, Math.round((value(p) / max) * (H - 12)));
      return `<rect x="${(i * bw).toFixed(1)}" y="${H - h}" width="${Math.max(1, bw - 1).toFixed(1)}" height="${h}" fill="${p.outcome === 'failed' || p.outcome === 'crashed' ? '#d54941' : color}"><title>${esc(when(p.startedAt))}: ${value(p)}</title></rect>`;
    })
    .join('');
  return `<figure style="margin:0"><figcaption class="muted">${esc(label)} (max ${esc(max % 1 ? max.toFixed(1) : max)})</figcaption><svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(label)}">${bars}</svg></figure>`;
}

export function renderOverview(c: PageContext, d: OverviewData): string {
  const w = WORDS[c.lang];
  const statuses = ['pending', 'sending', 'sent', 'failed', 'dead', 'invalid', 'revoked', 'superseded'];
  const reasons = Array.isArray(d.health.reasons) ? (d.health.reasons as unknown[]).map(String) : [];
  let depth = 0;
  for (const k of Object.values(d.status.counts)) depth += (k.pending ?? 0) + (k.sending ?? 0);
  const q = d.status.feishu.quota;
  const role = d.health.state === 'leader' ? w.leader : d.health.state === 'waiting' ? w.standby : String(d.health.state ?? '—');
  const cards = `<div class="cards">
<div class="card" id="health"><div class="muted">${esc(w.health)}</div><div class="big ${d.health.ok ? 'ok' : 'bad'}">${esc(d.health.ok ? w.healthy : w.unhealthy)}</div>${reasons.map((r) => `<div class="bad">${esc(r)}</div>`).join('')}</div>
<div class="card"><div class="muted">${esc(w.process)}</div><div class="big">${esc(role)}</div><div class="muted">${esc(w.lockHolder)}: ${d.status.lock ? `${esc(d.status.lock.owner)}, ${esc(w.heartbeat)} ${esc(when(d.status.lock.heartbeatAt))}` : esc(w.lockFree)}</div></div>
<div class="card"><div class="muted">${esc(w.outboxDepth)}</div><div class="big">${depth}</div>${d.status.heldTotal > 0 ? `<div class="bad">${d.status.heldTotal} ${esc(w.held)}</div>` : ''}</div>
<div class="card" id="quota"><div class="muted">${esc(w.quota)} ${esc(q.month)}</div><div class="big">${q.used}${q.limit !== null ? ` / ${q.limit}` : ''}</div><div class="muted">${q.limit !== null ? `${Math.floor((q.used / q.limit) * 100)} %, ${esc(w.left)} ${Math.max(0, q.limit - q.used)}` : esc(w.quotaNoLimit)}</div></div>
</div>`;
  const kinds = KINDS.filter((k) => d.status.counts[k] || d.status.watermarks.some((x) => x.kind === k));
  const rows = kinds
    .map((k) => {
      const wm = d.status.watermarks.find((x) => x.kind === k);
      const counts = d.status.counts[k] ?? {};
      const lag = wm?.cursorAt ? d.now - wm.cursorAt : null;
      const problems = (counts.failed ?? 0) + (counts.dead ?? 0) + (counts.invalid ?? 0);
      return `<tr><th>${esc(k)}</th><td><code>${esc(wm?.cursorAt ? when(wm.cursorAt) : (wm?.cursor ?? '—'))}</code></td><td class="num">${esc(duration(lag))}</td><td class="num">${(counts.pending ?? 0) + (counts.sending ?? 0)}</td>${statuses
        .map((s) => `<td class="num hide-s">${s === 'failed' || s === 'dead' || s === 'invalid' ? (counts[s] ? `<a href="/problems?status=${s}&amp;kind=${k}">${counts[s]}</a>` : '0') : (counts[s] ?? 0)}</td>`)
        .join('')}<td class="num">${problems ? `<a href="/problems?kind=${k}">${problems}</a>` : '0'}</td></tr>`;
    })
    .join('');
  const table = `<section><h2>${esc(w.kinds)}</h2><div class="scroll"><table id="kinds"><thead><tr><th>${esc(w.kind)}</th><th>${esc(w.watermark)}</th><th>${esc(w.lag)}</th><th>${esc(w.outbox)}</th>${statuses
    .map((s) => `<th class="hide-s">${esc(s)}</th>`)
    .join('')}<th>${esc(w.problems)}</th></tr></thead><tbody>${rows || `<tr><td colspan="13">${esc(w.none)}</td></tr>`}</tbody></table></div></section>`;
  const charts =
    d.cycles.length === 0
      ? `<p class="muted">${esc(w.noCycles)}</p>`
      : `<div class="cards">${chart(d.cycles, (p) => p.read, w.cyclesRecords, '#3370ff')}${chart(d.cycles, (p) => (p.durationMs ?? 0) / 1000, w.cyclesDuration, '#7b61ff')}</div>`;
  return layout(c, 'overview', w.overview, `${cards}${table}<section id="cycles"><h2>${esc(w.cycles)}</h2>${charts}</section><p><a href="/problems">${esc(w.latestProblems)} →</a></p>`);
}

export interface ProblemsQuery {
  status: string;
  kind: string;
  code: string;
  q: string;
}

export function renderProblems(c: PageContext, f: ProblemsQuery, items: Operation[], next: number | null, limit: number): string {
  const w = WORDS[c.lang];
  const opt = (v: string, label: string, cur: string) => `<option value="${esc(v)}"${v === cur ? ' selected' : ''}>${esc(label)}</option>`;
  const form = `<section><form class="filters" method="get" action="/problems">
<label>${esc(w.status)}<select name="status">${opt('', w.allStatuses, f.status)}${PROBLEM_STATUSES.map((s) => opt(s, s, f.status)).join('')}</select></label>
<label>${esc(w.kind)}<select name="kind">${opt('', w.all, f.kind)}${KINDS.map((k) => opt(k, k, f.kind)).join('')}</select></label>
<label>${esc(w.code)}<input name="code" value="${esc(f.code)}" size="12" inputmode="text"></label>
<label>${esc(w.employee)}<input name="q" value="${esc(f.q)}" size="16"></label>
<input type="hidden" name="lang" value="${c.lang}"><button type="submit">${esc(w.filter)}</button></form></section>`;
  const rows = items
    .map((o) => {
      const e = explanation(o, c.lang);
      const message = o.status === 'invalid' ? (o.reasons ?? []).join('; ') : (o.feishuMsg ?? '');
      const dates = o.start && o.end ? `${esc(o.start)} –<br>${esc(o.end)}` : esc(o.effectiveDate ?? '—');
      return `<tr data-key="${esc(o.sourceKey)}"><td>${tag(o.status)}${c.actions ? `<div>${retryButton(c, o)}</div>` : ''}</td><td>${esc(o.kind)}</td><td><a href="${recordHref(o.kind, o.sourceKey)}">${esc(o.sourceKey)}</a></td><td>${esc(o.userId ?? '—')}</td><td class="nowrap">${dates}</td><td>${codeCell(o)}</td><td class="meaning">${md(e.meaning)}</td><td class="todo">${md(e.todo)}</td><td class="num">${o.attempts}</td><td class="nowrap">${esc(when(o.updatedAt))}</td><td class="hide-s">${esc(message.slice(0, 200))}</td></tr>`;
    })
    .join('');
  const keep = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v) keep.set(k, v);
  if (limit) keep.set('limit', String(limit));
  const nextLink = next !== null ? `<a href="/problems?${esc(new URLSearchParams([...keep, ['cursor', String(next)]]).toString())}" id="next-page">${esc(w.next)} →</a>` : '';
  const firstLink = c.url.searchParams.has('cursor') ? `<a href="/problems?${esc(keep.toString())}">← ${esc(w.first)}</a> ` : '';
  const table = items.length
    ? `<div class="scroll"><table id="problems"><thead><tr><th>${esc(w.status)}</th><th>${esc(w.kind)}</th><th>${esc(w.sourceKey)}</th><th>${esc(w.employeeCol)}</th><th>${esc(w.dates)}</th><th>${esc(w.code)}</th><th>${esc(w.meaning)}</th><th>${esc(w.todo)}</th><th>${esc(w.attempts)}</th><th>${esc(w.lastError)}</th><th class="hide-s">${esc(w.message)}</th></tr></thead><tbody>${rows}</tbody></table></div>`
    : `<p>${esc(w.noProblems)}</p>`;
  const readOnly = c.actions ? '' : `<p class="muted" id="read-only">${esc(w.readOnly)}</p>`;
  return layout(c, 'problems', w.problems, `${form}<section>${readOnly}${table}<p>${firstLink}${nextLink}</p></section>`);
}

export function renderRecord(c: PageContext, kind: string, key: string, story: RecordStory | null): string {
  const w = WORDS[c.lang];
  const title = `${w.record} ${kind} ${key}`;
  if (!story) return layout(c, 'record', title, `<p>${esc(w.notFound)}</p>`);
  const cur = story.current;
  const current = cur
    ? `<section id="current"><h2>${esc(w.current)}</h2><table><tbody>
<tr><th>${esc(w.state)}</th><td>${tag(cur.state)}</td></tr><tr><th>${esc(w.version)}</th><td><code>${esc(cur.version ?? '—')}</code></td></tr>
<tr><th>${esc(w.employeeCol)}</th><td>${esc(cur.userId ?? '—')}</td></tr><tr><th>${esc(w.dates)}</th><td>${esc(cur.effectiveDate ?? '—')}</td></tr>
${cur.reasons ? `<tr><th>${esc(w.reasons)}</th><td>${esc(cur.reasons.join('; '))}</td></tr>` : ''}
<tr><th>${esc(w.firstSeen)}</th><td>${esc(when(cur.firstSeenAt))}</td></tr><tr><th>${esc(w.updated)}</th><td>${esc(when(cur.updatedAt))}</td></tr></tbody></table></section>`
    : '';
  const versions = story.versions
    .map((v, i) => {
      const ops = v.operations
        .map((o) => {
          const e = o.status === 'sent' || o.status === 'pending' && !o.errorCode ? null : explanation(o, c.lang);
          return `<tr><td class="num">#${o.id}</td><td>${esc(o.operation)}</td><td>${tag(o.status)}</td><td class="num">${o.attempts}</td><td><code>${esc(o.idempotentId ?? '—')}</code></td><td><code>${esc(o.approvalId ?? '—')}</code></td><td>${codeCell(o)}${e && e.meaning !== '—' ? `<div class="meaning">${md(e.meaning)}</div><div class="todo muted">${md(e.todo)}</div>` : ''}${o.feishuMsg ? `<div class="muted">${esc(o.feishuMsg.slice(0, 300))}</div>` : ''}</td><td>${esc(when(o.createdAt))}</td><td>${esc(when(o.updatedAt))}</td><td>${esc(when(o.sentAt))}</td><td>${retryButton(c, o)}</td></tr>`;
        })
        .join('');
      return `<section class="version" data-version="${esc(v.version)}"><h2>${esc(w.version)} ${i + 1}: <code>${esc(v.version.slice(0, 16))}</code> <span class="muted">${esc(w.firstSeen)} ${esc(when(v.firstSeenAt))}</span></h2>
${v.payload ? `<details open><summary>${esc(w.payload)}</summary><pre>${esc(JSON.stringify(v.payload, null, 2))}</pre></details>` : ''}${v.reasons ? `<p><strong>${esc(w.reasons)}:</strong> ${esc(v.reasons.join('; '))}</p>` : ''}
<div class="scroll"><table class="ops"><thead><tr><th>id</th><th>${esc(w.operation)}</th><th>${esc(w.status)}</th><th>${esc(w.attempts)}</th><th>${esc(w.idempotentId)}</th><th>${esc(w.approvalId)}</th><th>${esc(w.code)}</th><th>${esc(w.created)}</th><th>${esc(w.updated)}</th><th>${esc(w.sent)}</th><th></th></tr></thead><tbody>${ops}</tbody></table></div></section>`;
    })
    .join('');
  const l = story.lookup;
  const lookup = `<section id="lookup"><h2>${esc(w.lookup)}</h2>${
    l
      ? `<p>#${l.operationId} ${esc(when(l.at))} ${l.errorCode ? `<code>${esc(l.errorCode)}</code>` : ''} ${esc(w.approvalId)} <code>${esc(l.approvalId ?? '—')}</code> ${esc(l.message ?? '')}</p>${
          l.searched
            ? `<p class="searched">${esc(w.lookupBy)} <code>${l.searched.by}</code>, ${esc(w.lookupStatuses)} ${esc(l.searched.statuses.join(', '))}: <strong>${l.searched.found ? `${esc(w.lookupFound)} ${l.searched.status ?? '—'}` : esc(w.lookupNotFound)}</strong></p>`
            : ''
        }`
      : `<p class="muted">${esc(w.noLookup)}</p>`
  }</section>`;
  return layout(c, 'record', title, `${current}<h2>${esc(w.versions)}</h2>${versions}${story.truncated ? `<p class="muted">${esc(w.truncated)}</p>` : ''}${lookup}`);
}

export type { Words };
