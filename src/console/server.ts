import crypto from 'node:crypto';
import type http from 'node:http';
import type { Knex } from 'knex';
import type { ResolvedConfig } from '../config/load.js';
import { ConfigError } from '../errors.js';
import type { Kind } from '../kinds.js';
import { sanitizeErrorText } from '../log/redact.js';
import type { Health } from '../metrics/metrics.js';
import type { StateTables } from '../state/tables.js';
import { collectStatus, cursorZones, quotaSettings } from '../state/status.js';
import { checkRetryRequest, performRetry } from '../pipeline/retry.js';
import { pickLang } from './i18n.js';
import { renderOverview, renderProblems, renderRecord, type PageContext } from './pages.js';
import { bucketCycles, cyclesSince, DEFAULT_PAGE, kindParam, listProblems, MAX_PAGE, PROBLEM_STATUSES, recordStory, type ProblemStatus } from './queries.js';

/*
 * The web console on the metrics listener: Overview, Problems and Record pages, the JSON they
 * are built from, and POST /api/retry when a console token is configured.
 */

export interface ConsoleDeps {
  readonly db: Knex;
  readonly tables: StateTables;
  readonly config: ResolvedConfig;
  readonly health: () => Health | Promise<Health>;
  /** Kinds configured and enabled (what `retry --kind` accepts). */
  readonly kinds: readonly Kind[];
  readonly now?: () => number;
}

const MAX_BODY = 4096;

/** Headers of every console answer: the pages carry employee data. */
const COMMON_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

const CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...COMMON_HEADERS, 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify(body));
}

function sendHtml(res: http.ServerResponse, status: number, html: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...COMMON_HEADERS, 'content-type': 'text/html; charset=utf-8', 'content-security-policy': CSP, ...headers });
  res.end(html);
}

/** Equal tokens, compared in constant time (digests of equal length, whatever was sent). */
export function tokenMatches(expected: string, presented: string): boolean {
  const a = crypto.createHash('sha256').update(expected).digest();
  const b = crypto.createHash('sha256').update(presented).digest();
  return crypto.timingSafeEqual(a, b);
}

/** 403 when no token is configured (actions are off), 401 when the Bearer token is missing or wrong. */
export function authorizeAction(configured: string | undefined, authorization: string | undefined): void {
  if (!configured) throw new HttpError(403, 'actions are off: set console.token (or ATTENDANCE_SYNC_CONSOLE_TOKEN) to enable them');
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  if (!m || !tokenMatches(configured, m[1]!)) {
    throw new HttpError(401, authorization ? 'wrong console token' : 'missing Authorization: Bearer <console token>', { 'www-authenticate': 'Bearer realm="attendance-sync"' });
  }
}

async function readJsonBody(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new HttpError(413, `request body over ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  } catch {
    throw new HttpError(400, 'body: not JSON (send {"status":"failed","kind":"leave","id":"…"})');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'body: must be a JSON object');
  return body as Record<string, unknown>;
}

function optionalString(body: Record<string, unknown>, field: string): string | undefined {
  const v = body[field];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new HttpError(400, `${field}: must be a string`);
  return v;
}

function problemFilter(sp: URLSearchParams) {
  const status = sp.get('status') ?? '';
  const statuses = status
    .split(',')
    .filter(Boolean)
    .map((s) => {
      if (!(PROBLEM_STATUSES as readonly string[]).includes(s)) throw new HttpError(400, `status: must be one of ${PROBLEM_STATUSES.join(', ')} (got "${s}")`);
      return s as ProblemStatus;
    });
  let kind: Kind | undefined;
  try {
    kind = kindParam(sp.get('kind'));
  } catch (err) {
    throw new HttpError(400, (err as Error).message);
  }
  const limitText = sp.get('limit');
  const limit = limitText ? Number(limitText) : DEFAULT_PAGE;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) throw new HttpError(400, `limit: an integer from 1 to ${MAX_PAGE} (got "${limitText}")`);
  const cursor = sp.get('cursor');
  if (cursor && !/^\d{1,18}$/.test(cursor)) throw new HttpError(400, `cursor: not a cursor this console gave out (got "${cursor.slice(0, 40)}")`);
  const code = (sp.get('code') ?? '').trim();
  if (code && !/^(?:\d{1,10}|[A-Z_]{1,64})$/.test(code)) throw new HttpError(400, `code: a Feishu code (digits) or an error code such as FEISHU_USER_NOT_FOUND (got "${code.slice(0, 40)}")`);
  const q = (sp.get('q') ?? '').trim();
  return {
    statuses,
    kind,
    code: code || undefined,
    q: q || undefined,
    limit,
    before: cursor ? Number(cursor) : undefined,
    raw: { status, kind: kind ?? '', code, q },
  };
}

/** `/record/:kind/:key` and `/api/records/:kind/:key`: the kind and the (URL-encoded) key. */
function keyPath(rest: string): { kind: Kind; key: string } {
  const slash = rest.indexOf('/');
  if (slash <= 0 || slash === rest.length - 1) throw new HttpError(404, 'not found: /record/KIND/SOURCE_KEY');
  let kind: Kind | undefined;
  let key: string;
  try {
    kind = kindParam(decodeURIComponent(rest.slice(0, slash)));
    key = decodeURIComponent(rest.slice(slash + 1));
  } catch (err) {
    throw new HttpError(err instanceof RangeError ? 404 : 400, err instanceof RangeError ? err.message : 'path: bad URL encoding');
  }
  if (!kind) throw new HttpError(404, 'not found: /record/KIND/SOURCE_KEY');
  return { kind, key };
}

/**
 * The console's request handler. Returns false for a path it does not serve (the metrics
 * listener then answers 404).
 */
export function createConsole(deps: ConsoleDeps): (req: http.IncomingMessage, res: http.ServerResponse) => Promise<boolean> {
  const now = deps.now ?? Date.now;
  const token = deps.config.console.token;
  const status = () => collectStatus(deps.db, deps.tables, cursorZones(deps.config), quotaSettings(deps.config));

  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://console.local');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const isApi = path.startsWith('/api/');
    const served = path === '/' || path === '/problems' || path.startsWith('/record/') || isApi;
    if (!served) return false;
    const lang = pickLang(url.searchParams.get('lang'), req.headers.cookie, req.headers['accept-language']);
    const langCookie = url.searchParams.has('lang') ? { 'set-cookie': `lang=${lang}; Path=/; Max-Age=31536000; SameSite=Strict` } : undefined;
    const ctx: PageContext = { lang, url: new URL(`${path}${url.search}`, 'http://console.local'), actions: Boolean(token) };
    try {
      if (path === '/api/retry') {
        if (method !== 'POST') throw new HttpError(405, 'POST /api/retry {status, kind?, id?}', { allow: 'POST' });
        authorizeAction(token, req.headers.authorization);
        const body = await readJsonBody(req);
        const request = { status: optionalString(body, 'status') ?? 'failed', kind: optionalString(body, 'kind'), id: optionalString(body, 'id') };
        try {
          checkRetryRequest(request, deps.kinds, deps.config.configPath);
          const r = await performRetry(deps.db, deps.tables, request);
          sendJson(res, 200, { ...(r.outcome ?? { requeued: 0, superseded: 0, revokes: 0, kept: 0 }), lines: r.lines });
        } catch (err) {
          if (err instanceof ConfigError) throw new HttpError(400, err.problems.join('; ').replace(/--(status|kind|id)\b/g, '$1'));
          throw err;
        }
        return true;
      }
      if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, `${method} not allowed here`, { allow: 'GET' });
      if (path === '/api/status') {
        sendJson(res, 200, await status());
      } else if (path === '/api/records') {
        const f = problemFilter(url.searchParams);
        const page = await listProblems(deps.db, deps.tables, f);
        sendJson(res, 200, { items: page.items, next: page.next === null ? null : String(page.next) });
      } else if (path.startsWith('/api/records/')) {
        const { kind, key } = keyPath(path.slice('/api/records/'.length));
        const story = await recordStory(deps.db, deps.tables, kind, key);
        if (!story) throw new HttpError(404, `no operation for ${kind} source key "${key}" in the sync table`);
        sendJson(res, 200, story);
      } else if (isApi) {
        throw new HttpError(404, 'not found: /api/status, /api/records, /api/records/KIND/KEY, POST /api/retry');
      } else if (path === '/') {
        const t = now();
        const [s, health, cycles] = await Promise.all([status(), deps.health(), cyclesSince(deps.db, deps.tables, t - 24 * 3600_000)]);
        sendHtml(res, 200, renderOverview(ctx, { status: s, health, cycles: bucketCycles(cycles, t - 24 * 3600_000, t), now: t }), langCookie);
      } else if (path === '/problems') {
        const f = problemFilter(url.searchParams);
        const page = await listProblems(deps.db, deps.tables, f);
        sendHtml(res, 200, renderProblems(ctx, f.raw, page.items, page.next, f.limit === DEFAULT_PAGE ? 0 : f.limit), langCookie);
      } else {
        const { kind, key } = keyPath(path.slice('/record/'.length));
        const story = await recordStory(deps.db, deps.tables, kind, key);
        sendHtml(res, story ? 200 : 404, renderRecord(ctx, kind, key, story), langCookie);
      }
    } catch (err) {
      const e = err instanceof HttpError ? err : new HttpError(500, `error: ${sanitizeErrorText((err as Error).message)}`);
      if (isApi) sendJson(res, e.status, { error: e.message }, e.headers);
      else sendHtml(res, e.status, `<!doctype html><meta charset="utf-8"><title>${e.status}</title><p>${e.message.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)}</p><p><a href="/">console</a></p>`, e.headers);
    }
    return true;
  };
}
