import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { consoleWorld, type ConsoleWorld } from './helpers/consoleWorld.js';

/*
 * The console in a real browser (Debian's Chromium, headless) over a real `run` against the
 * emulator, two employees out of the app's scope: what a person sees. The screenshots in the
 * README are written here (docs/img/).
 */

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'browser-console-token-0123456789';
const IMG = path.resolve('docs/img');

async function openBrowser(locale: string): Promise<{ ctx: BrowserContext; close: () => Promise<void> }> {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'con-chromium-'));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    locale,
    viewport: { width: 1280, height: 800 },
  });
  return {
    ctx,
    close: async () => {
      await ctx.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function settled(w: ConsoleWorld): Promise<void> {
  await w.waitFor(async () => {
    const s = (await (await fetch(`${w.base}/api/status`)).json()) as { counts: Record<string, Record<string, number>> };
    const c = s.counts.leave ?? {};
    return (c.failed ?? 0) > 0 && (c.sent ?? 0) > 0 && (c.pending ?? 0) + (c.sending ?? 0) === 0 ? true : undefined;
  }, 40_000);
}

/** The refused leaves: source key → employee. */
async function refusedLeaves(w: ConsoleWorld): Promise<Array<{ key: string; user: string }>> {
  const r = (await (await fetch(`${w.base}/api/records?status=failed`)).json()) as { items: Array<{ sourceKey: string; userId: string }> };
  return r.items.map((i) => ({ key: i.sourceKey, user: i.userId }));
}

describe('the console in Chromium, without a token', () => {
  let w: ConsoleWorld;
  let b: Awaited<ReturnType<typeof openBrowser>>;
  beforeAll(async () => {
    w = await consoleWorld('con_br_ro', { refuse: 2 });
    b = await openBrowser('zh-CN');
    await settled(w);
  }, 90_000);
  afterAll(async () => {
    await b?.close();
    await w?.close();
  });

  it('shows the refused record in Chinese from the browser language, read-only: no retry button', async () => {
    const page = await b.ctx.newPage();
    await page.goto(`${w.base}/problems`);
    expect(await page.locator('h1').innerText()).toBe('问题记录');
    const [first] = await refusedLeaves(w);
    const row = page.locator(`#problems tr[data-key="${first!.key}"]`);
    expect(await row.locator('td.meaning').innerText()).toContain('用户不存在');
    expect(await row.innerText()).toContain('1220004');
    expect(await page.locator('button[data-retry]').count()).toBe(0);
    expect(await page.locator('#token').count()).toBe(0);
    expect(await page.locator('#read-only').innerText()).toContain('console.token');
    // Switch to English: the cookie keeps it on the next page.
    await page.click('#lang-switch');
    expect(await page.locator('h1').innerText()).toBe('Problems');
    await page.click('header >> text=Overview');
    expect(await page.locator('h1').innerText()).toBe('Overview');
  }, 60_000);
});

describe('the console in Chromium, with a token', () => {
  let w: ConsoleWorld;
  let b: Awaited<ReturnType<typeof openBrowser>>;
  let page: Page;
  beforeAll(async () => {
    fs.mkdirSync(IMG, { recursive: true });
    w = await consoleWorld('con_br', { token: TOKEN, refuse: 2 });
    b = await openBrowser('en-US');
    page = await b.ctx.newPage();
    await settled(w);
  }, 90_000);
  afterAll(async () => {
    await b?.close();
    await w?.close();
  });

  it('Overview: health, per-kind counts, quota and the last cycles chart', async () => {
    await page.goto(`${w.base}/`);
    expect(await page.locator('#health .big').innerText()).toBe('healthy');
    const leave = page.locator('#kinds tbody tr', { hasText: 'leave' });
    expect(await leave.innerText()).toMatch(/\d+ (s|min|h)/); // the watermark's lag
    expect(Number(await page.locator('#kinds tbody tr th + td + td + td').first().innerText())).toBe(0); // nothing waiting
    expect(await page.locator('#quota .big').innerText()).toMatch(/^\d+ \/ 10000$/);
    expect(await page.locator('#cycles svg rect').count()).toBeGreaterThan(0);
  }, 30_000);

  it('Problems: a refused record with its code, meaning and what to do', async () => {
    await page.goto(`${w.base}/problems`);
    const [first] = await refusedLeaves(w);
    const row = page.locator(`#problems tr[data-key="${first!.key}"]`);
    const text = await row.innerText();
    expect(text).toContain('1220004');
    expect(text).toContain('FEISHU_USER_NOT_FOUND');
    expect(text).toContain(first!.user);
    expect(await row.locator('td.meaning').innerText()).toBe('user does not exist / out of scope, or "API 接入" not done');
    expect(await row.locator('td.todo').innerText()).toBe('check employee_type and the user; finish API 接入');
    expect(await row.locator('button[data-retry]').count()).toBe(1);
    await page.screenshot({ path: path.join(IMG, 'console-problems.png'), fullPage: true });
  }, 30_000);

  it('Record: after an edit, both versions with their payloads, the revoke of the first and the create of the second', async () => {
    const refused = new Set((await refusedLeaves(w)).map((r) => r.key));
    const sent = (await w.db.db('leave_requests').where('status', 'approved').whereNull('deleted_at').orderBy('id').pluck('id')) as number[];
    const id = sent.find((k) => !refused.has(String(k)))!;
    const before = (await w.db.db('leave_requests').where({ id }).first()) as { start_at: string };
    await w.moveLeave(id, 1);
    await w.waitFor(async () => {
      const s = (await (await fetch(`${w.base}/api/records/leave/${id}`)).json()) as { versions: Array<{ operations: Array<{ status: string }> }> };
      return s.versions.length === 2 && s.versions.every((v) => v.operations.every((o) => o.status !== 'pending' && o.status !== 'sending')) ? true : undefined;
    });
    await page.goto(`${w.base}/record/leave/${id}`);
    const versions = page.locator('section.version');
    expect(await versions.count()).toBe(2);
    const firstOps = await versions.nth(0).locator('table.ops tbody tr').allInnerTexts();
    expect(firstOps).toHaveLength(2);
    expect(firstOps[0]).toMatch(/create\s+revoked/);
    expect(firstOps[1]).toMatch(/revoke\s+sent/);
    const secondOps = await versions.nth(1).locator('table.ops tbody tr').allInnerTexts();
    expect(secondOps).toHaveLength(1);
    expect(secondOps[0]).toMatch(/create\s+sent/);
    expect(secondOps[0]).toMatch(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ/);
    // Each version shows the payload it mapped to: the old start, then the new one.
    const oldStart = String(before.start_at).slice(0, 10);
    expect(await versions.nth(0).locator('pre').innerText()).toContain(oldStart);
    expect(await versions.nth(1).locator('pre').innerText()).not.toContain(`"start_time": "${oldStart}`);
    expect(await page.locator('#lookup').innerText()).toContain('none was needed');
    // Feishu holds the second version only.
    const user = String(((await w.db.db('leave_requests as r').join('employees as e', 'e.id', 'r.employee_id').where('r.id', id).first('e.employee_no')) as { employee_no: string }).employee_no);
    const approved = w.emu.ledger().filter((e) => e.status === 2 && e.userId === user);
    expect(approved.some((e) => String(e.item.start_time).startsWith(oldStart))).toBe(false);
    expect(approved.length).toBeGreaterThan(0);
    await page.screenshot({ path: path.join(IMG, 'console-record.png'), fullPage: true });
  }, 60_000);

  it('Retry: with the token the button queues the record again and the next cycle sends it', async () => {
    const [first] = await refusedLeaves(w);
    w.emu.setOptions({ users: w.everyone });
    await page.goto(`${w.base}/problems`);
    // A wrong token is refused and said so.
    await page.fill('#token', 'not-the-token-at-all');
    await page.click(`#problems tr[data-key="${first!.key}"] button[data-retry]`);
    await page.waitForFunction(() => (globalThis as any).document.getElementById('action-result').textContent !== '');
    expect(await page.locator('#action-result').innerText()).toMatch(/^Retry refused: wrong console token/);
    await page.fill('#token', TOKEN);
    await page.click(`#problems tr[data-key="${first!.key}"] button[data-retry]`);
    await page.waitForFunction(() => /^Queued again/.test((globalThis as any).document.getElementById('action-result').textContent));
    expect(await page.locator('#action-result').innerText()).toBe('Queued again: 1 failed operation(s) queued again: the next cycle sends them');
    await w.waitFor(() => (w.emu.ledger().some((e) => e.userId === first!.user && e.status === 2) ? true : undefined));
    await w.waitFor(async () => {
      const s = (await (await fetch(`${w.base}/api/records/leave/${first!.key}`)).json()) as { versions: Array<{ operations: Array<{ status: string }> }> };
      return s.versions[0]!.operations[0]!.status === 'sent' ? true : undefined;
    });
    await page.goto(`${w.base}/record/leave/${first!.key}`);
    expect(await page.locator('table.ops tbody tr').first().innerText()).toMatch(/create\s+sent\s+1/);
    await page.goto(`${w.base}/problems`);
    expect(await page.locator(`#problems tr[data-key="${first!.key}"]`).count()).toBe(0);
    // The token typed in the page never reached the worker's log.
    expect(w.output()).not.toContain(TOKEN);
  }, 60_000);

  it('is usable on a phone: no horizontal page scroll, tables scroll in their box', async () => {
    const phone = await b.ctx.newPage();
    await phone.setViewportSize({ width: 390, height: 844 });
    await phone.goto(`${w.base}/problems`);
    const overflow = await phone.evaluate(() => {
      const root = (globalThis as any).document.documentElement;
      return (root.scrollWidth as number) - (root.clientWidth as number);
    });
    expect(overflow).toBeLessThanOrEqual(0);
    await phone.close();
  }, 30_000);
});
