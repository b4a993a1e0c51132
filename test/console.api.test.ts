import fs from 'node:fs';
import { consoleWorld, type ConsoleWorld } from './helpers/consoleWorld.js';
import { authorizeAction, tokenMatches } from '../src/console/server.js';
import { pickLang } from '../src/console/i18n.js';
import { CODE_EXPLANATIONS, explainCode, renderCodeTable } from '../src/feishu/codes.js';

/*
 * The console's JSON endpoints over a real `run` (CLI process) against the emulator, with
 * two employees out of the app's scope (1220004): what scripts read, and the token rules
 * of the actions.
 */

const TOKEN = 'console-token-for-tests-0123456789';

interface Problem {
  id: number;
  kind: string;
  sourceKey: string;
  userId: string;
  status: string;
  feishuCode: number | null;
  errorCode: string | null;
  attempts: number;
  start: string | null;
  end: string | null;
}

describe('console JSON endpoints and action rules (run, SQLite, emulator)', () => {
  let w: ConsoleWorld;
  beforeAll(async () => {
    w = await consoleWorld('con_api', { token: TOKEN, refuse: 3 });
    await w.waitFor(async () => {
      const r = (await (await fetch(`${w.base}/api/records?status=failed`)).json()) as { items: Problem[] };
      const s = (await (await fetch(`${w.base}/api/status`)).json()) as { counts: Record<string, Record<string, number>> };
      const c = s.counts.leave ?? {};
      return r.items.length > 0 && (c.pending ?? 0) + (c.sending ?? 0) === 0 && (c.sent ?? 0) > 0 ? true : undefined;
    });
  }, 60_000);
  afterAll(async () => w?.close());

  it('GET /api/status is what `status --json` prints', async () => {
    const api = (await (await fetch(`${w.base}/api/status`)).json()) as Record<string, any>;
    const cli = await w.cli('status', '--json');
    expect(cli.code).toBe(0);
    const printed = JSON.parse(cli.stdout) as Record<string, any>;
    // The lock's heartbeat and the quota move between the two reads; the rest is the same.
    for (const k of ['watermarks', 'counts', 'latestErrors', 'tenant', 'heldTotal', 'held']) expect(api[k]).toEqual(printed[k]);
    expect(Object.keys(api).sort()).toEqual(Object.keys(printed).sort());
    expect(api.counts.leave.failed).toBeGreaterThan(0);
  });

  it('GET /api/records lists the refused records newest first, filters them, and pages with a cursor', async () => {
    const res = await fetch(`${w.base}/api/records?status=failed&kind=leave`);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const all = ((await res.json()) as { items: Problem[]; next: string | null }).items;
    const expected = (await w.db.db('leave_requests as r').join('employees as e', 'e.id', 'r.employee_id').where('r.status', 'approved').whereNull('r.deleted_at').whereIn('e.employee_no', w.refused).pluck('r.id')) as number[];
    expect(all.map((p) => p.sourceKey).sort()).toEqual(expected.map(String).sort());
    for (const p of all) {
      expect(p).toMatchObject({ kind: 'leave', status: 'failed', feishuCode: 1220004, errorCode: 'FEISHU_USER_NOT_FOUND', attempts: 1 });
      expect(w.refused).toContain(p.userId);
      expect(p.start).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    }
    expect(all.map((p) => p.id)).toEqual([...all.map((p) => p.id)].sort((a, b) => b - a));

    // Keyset pages of 2 walk the same list, without gaps or repeats.
    const walked: number[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 20; i++) {
      const page = (await (await fetch(`${w.base}/api/records?status=failed&limit=2${cursor ? `&cursor=${cursor}` : ''}`)).json()) as { items: Problem[]; next: string | null };
      expect(page.items.length).toBeLessThanOrEqual(2);
      walked.push(...page.items.map((p) => p.id));
      cursor = page.next;
      if (!cursor) break;
    }
    expect(walked).toEqual(all.map((p) => p.id));

    const one = w.refused[0]!;
    const byEmployee = ((await (await fetch(`${w.base}/api/records?q=${encodeURIComponent(one)}`)).json()) as { items: Problem[] }).items;
    expect(byEmployee.length).toBeGreaterThan(0);
    expect(byEmployee.every((p) => p.userId === one)).toBe(true);
    const byKey = ((await (await fetch(`${w.base}/api/records?q=${all[0]!.sourceKey}`)).json()) as { items: Problem[] }).items;
    expect(byKey.map((p) => p.id)).toEqual([all[0]!.id]);
    expect(((await (await fetch(`${w.base}/api/records?code=1220004`)).json()) as { items: Problem[] }).items).toHaveLength(all.length);
    expect(((await (await fetch(`${w.base}/api/records?code=FEISHU_USER_NOT_FOUND`)).json()) as { items: Problem[] }).items).toHaveLength(all.length);
    expect(((await (await fetch(`${w.base}/api/records?code=1220005`)).json()) as { items: Problem[] }).items).toHaveLength(0);
    expect(((await (await fetch(`${w.base}/api/records?status=dead`)).json()) as { items: Problem[] }).items).toHaveLength(0);
  });

  it('bad query parameters are refused with the field named', async () => {
    for (const [q, field] of [
      ['status=sent', 'status'],
      ['kind=holiday', 'kind'],
      ['limit=0', 'limit'],
      ['limit=5000', 'limit'],
      ['cursor=abc', 'cursor'],
      ['code=1%3B%20drop', 'code'],
    ] as const) {
      const res = await fetch(`${w.base}/api/records?${q}`);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(new RegExp(`^${field}:`));
    }
  });

  it('GET /api/records/:kind/:key tells one record: its version with the mapped payload and its operations', async () => {
    const first = ((await (await fetch(`${w.base}/api/records?status=failed`)).json()) as { items: Problem[] }).items[0]!;
    const res = await fetch(`${w.base}/api/records/leave/${encodeURIComponent(first.sourceKey)}`);
    expect(res.status).toBe(200);
    const story = (await res.json()) as Record<string, any>;
    expect(story.current).toMatchObject({ state: 'active', userId: first.userId });
    expect(story.versions).toHaveLength(1);
    expect(JSON.stringify(story.versions[0].payload)).toContain(first.userId);
    expect(JSON.stringify(story.versions[0].payload)).toContain(first.start!);
    expect(story.versions[0].operations).toEqual([expect.objectContaining({ id: first.id, operation: 'create', status: 'failed', feishuCode: 1220004, attempts: 1 })]);
    expect(story.versions[0].operations[0].idempotentId).toMatch(/\S/);
    expect((await fetch(`${w.base}/api/records/leave/no-such-key`)).status).toBe(404);
    expect((await fetch(`${w.base}/api/records/holiday/1`)).status).toBe(404);
  });

  it('POST /api/retry: 401 without or with a wrong Bearer token, 400 on a bad field, 200 with the retry outcome', async () => {
    const first = ((await (await fetch(`${w.base}/api/records?status=failed`)).json()) as { items: Problem[] }).items[0]!;
    const post = (body: unknown, auth?: string) =>
      fetch(`${w.base}/api/retry`, { method: 'POST', headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) }, body: JSON.stringify(body) });
    const missing = await post({ status: 'failed' });
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await post({ status: 'failed' }, `Bearer ${TOKEN}x`)).status).toBe(401);
    expect((await post({ status: 'failed' }, `Basic ${TOKEN}`)).status).toBe(401);
    const bad = await post({ status: 'sent' }, `Bearer ${TOKEN}`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/^status: must be failed or dead/);
    expect(((await (await post({ status: 'failed', kind: 'trip' }, `Bearer ${TOKEN}`)).json()) as { error: string }).error).toMatch(/^kind: trip is not configured/);
    expect((await fetch(`${w.base}/api/retry`)).status).toBe(405);
    // No secret in what the worker logged.
    expect(w.output()).not.toContain(TOKEN);

    // Still out of scope: retried, refused again, failed again (the rules of `retry`).
    const ok = await post({ status: 'failed', kind: 'leave', id: first.sourceKey }, `Bearer ${TOKEN}`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ requeued: 1, superseded: 0, revokes: 0, kept: 0, lines: ['1 failed operation(s) queued again: the next cycle sends them'] });
    const nothing = await post({ status: 'dead', id: first.sourceKey }, `Bearer ${TOKEN}`);
    expect(((await nothing.json()) as { lines: string[] }).lines[0]).toMatch(/^nothing to retry/);

    // In scope now: the retried record is sent and Feishu holds it.
    w.emu.setOptions({ users: w.everyone });
    const all = await post({ status: 'failed' }, `Bearer ${TOKEN}`);
    expect(all.status).toBe(200);
    await w.waitFor(async () => {
      const s = (await (await fetch(`${w.base}/api/status`)).json()) as { counts: Record<string, Record<string, number>> };
      const c = s.counts.leave ?? {};
      return (c.failed ?? 0) + (c.pending ?? 0) + (c.sending ?? 0) === 0 ? true : undefined;
    });
    expect(w.emu.ledger().some((e) => e.userId === first.userId && e.status === 2)).toBe(true);
    expect(((await (await fetch(`${w.base}/api/records?status=failed`)).json()) as { items: Problem[] }).items).toHaveLength(0);
  }, 60_000);

  it('a record shows its latest Feishu lookup: an admin withdrew it in Feishu, the edit\'s revoke is refused, the lookup by approval_id finds it withdrawn', async () => {
    // A sent leave of an employee in scope, with the approval Feishu holds for it.
    const ids = (await w.db.db('leave_requests').orderBy('id').pluck('id')) as Array<number | string>;
    let picked: { key: string; approvalId: string } | undefined;
    for (const id of ids) {
      const story = (await (await fetch(`${w.base}/api/records/leave/${id}`)).json()) as Record<string, any>;
      const sent = (story.versions?.[0]?.operations ?? []).find((o: any) => o.operation === 'create' && o.status === 'sent' && o.approvalId);
      if (sent && story.lookup === null) {
        picked = { key: String(id), approvalId: sent.approvalId };
        break;
      }
    }
    expect(picked).toBeDefined();
    w.emu.setOptions({ revokeTwice: 'error' });
    w.emu.admin.revoke(picked!.approvalId);
    await w.moveLeave(Number(picked!.key), 1);
    const story = await w.waitFor(async () => {
      const s = (await (await fetch(`${w.base}/api/records/leave/${picked!.key}`)).json()) as Record<string, any>;
      return s.lookup?.searched && s.versions.length === 2 ? s : undefined;
    });
    expect(story.lookup.searched).toMatchObject({ by: 'approval_id', found: true });
    expect([3, 4]).toContain(story.lookup.searched.status);
    expect(story.lookup.approvalId).toBe(picked!.approvalId);
    const html = await (await fetch(`${w.base}/record/leave/${picked!.key}?lang=en`)).text();
    expect(html).toContain('searched by <code>approval_id</code>');
    expect(html).toMatch(/found, status [34]/);
  }, 60_000);
});

describe('console without a token', () => {
  let w: ConsoleWorld;
  beforeAll(async () => {
    w = await consoleWorld('con_api_ro', { refuse: 1 });
  }, 60_000);
  afterAll(async () => w?.close());

  it('answers an action with 403 whatever the token, and its pages carry no retry button', async () => {
    const res = await fetch(`${w.base}/api/retry`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: '{}' });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toMatch(/console\.token/);
    await w.waitFor(async () => (((await (await fetch(`${w.base}/api/records?status=failed`)).json()) as { items: unknown[] }).items.length > 0 ? true : undefined));
    const html = await (await fetch(`${w.base}/problems`)).text();
    expect(html).toContain('1220004');
    expect(html).not.toContain('data-retry');
    // Unknown paths still get the metrics listener's 404.
    expect((await fetch(`${w.base}/nothing-here`)).status).toBe(404);
    expect((await fetch(`${w.base}/healthz`)).status).toBe(200);
  }, 60_000);
});

describe('console pieces', () => {
  it('the README holds exactly the code table the console explains codes with', () => {
    expect(fs.readFileSync('README.md', 'utf8')).toContain(renderCodeTable());
    for (const r of CODE_EXPLANATIONS) expect(r.meaning.zh && r.todo.zh).toBeTruthy();
    expect(explainCode({ feishuCode: 1220600, msg: 'The attendance result has been sealed' })?.meaning.en).toBe('the period is archived (封账)');
    expect(explainCode({ feishuCode: 1220004 })?.todo.en).toMatch(/API 接入/);
    expect(explainCode({ errorCode: 'FEISHU_TIMEOUT' })?.meaning.en).toBe('Feishu-side trouble');
    expect(explainCode({})).toBeUndefined();
  });

  it('authorization: 403 unconfigured, 401 missing or wrong, constant-time compare', () => {
    const status = (f: () => void) => {
      try {
        f();
        return 200;
      } catch (err) {
        return (err as { status: number }).status;
      }
    };
    expect(status(() => authorizeAction(undefined, `Bearer ${TOKEN}`))).toBe(403);
    expect(status(() => authorizeAction(TOKEN, undefined))).toBe(401);
    expect(status(() => authorizeAction(TOKEN, 'Bearer short'))).toBe(401);
    expect(status(() => authorizeAction(TOKEN, `bearer ${TOKEN}`))).toBe(200);
    expect(tokenMatches(TOKEN, TOKEN)).toBe(true);
    expect(tokenMatches(TOKEN, `${TOKEN}!`)).toBe(false);
  });

  it('language: ?lang, then the cookie, then Accept-Language by weight', () => {
    expect(pickLang(null, undefined, 'zh-CN,zh;q=0.9,en;q=0.8')).toBe('zh');
    expect(pickLang(null, undefined, 'en-US,en;q=0.9,zh-CN;q=0.8')).toBe('en');
    expect(pickLang(null, undefined, 'fr;q=1,zh-TW;q=0.5')).toBe('zh');
    expect(pickLang(null, 'lang=zh', 'en')).toBe('zh');
    expect(pickLang('en', 'lang=zh', 'zh')).toBe('en');
    expect(pickLang(null, undefined, undefined)).toBe('en');
  });
});
