import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { CLI } from './helpers/cli.js';
import { ContactClient } from '../src/resolve/contact.js';
import { TokenProvider } from '../src/feishu/token.js';

/** The emulator's contact/v3/users/batch_get_id over its user directory, in process and from a `--users` file. */
async function token(url: string, appId: string, appSecret: string): Promise<string> {
  const res = await fetch(`${url}/open-apis/auth/v3/tenant_access_token/internal`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ app_id: appId, app_secret: appSecret }) });
  return ((await res.json()) as { tenant_access_token: string }).tenant_access_token;
}

async function batchGetId(url: string, tok: string, idType: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}/open-apis/contact/v3/users/batch_get_id?user_id_type=${idType}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${tok}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

describe('emulator contact batch_get_id', () => {
  let emu: Emulator;
  beforeAll(async () => {
    emu = await startEmulator({
      directory: [
        { user_id: 'u1', email: 'a@x.example', mobile: '+8613800000001' },
        { user_id: 'u2', open_id: 'ou_custom', email: 'b@x.example', resigned: true },
      ],
      contactRateLimit: { perSecond: 3, perMinute: 1000 },
    });
  });
  afterAll(async () => emu?.close());

  it('answers by e-mail and mobile in the asked id type, hides resigned users without include_resigned, refuses 51 e-mails, throttles at its own limit', async () => {
    const tok = await token(emu.url, emu.appId, emu.appSecret);
    const r1 = await batchGetId(emu.url, tok, 'user_id', { emails: ['A@x.example', 'nobody@x.example', 'b@x.example'], mobiles: ['+8613800000001'], include_resigned: true });
    expect(r1.status).toBe(200);
    expect(r1.body.data.user_list).toEqual([
      { email: 'A@x.example', user_id: 'u1', status: expect.objectContaining({ is_resigned: false }) },
      { email: 'nobody@x.example' },
      { email: 'b@x.example', user_id: 'u2', status: expect.objectContaining({ is_resigned: true }) },
      { mobile: '+8613800000001', user_id: 'u1', status: expect.objectContaining({ is_resigned: false }) },
    ]);
    const r2 = await batchGetId(emu.url, tok, 'open_id', { emails: ['a@x.example', 'b@x.example'] });
    expect(r2.body.data.user_list).toEqual([{ email: 'a@x.example', user_id: 'ou_u1', status: expect.anything() }, { email: 'b@x.example' }]);
    const r3 = await batchGetId(emu.url, tok, 'user_id', { emails: Array.from({ length: 51 }, (_, i) => `p${i}@x.example`) });
    expect(r3.status).toBe(400);
    expect(r3.body.code).toBe(99992402);
    const r4 = await batchGetId(emu.url, tok, 'user_id', { emails: ['a@x.example'] });
    expect(r4.status).toBe(429);
    expect(r4.body.code).toBe(99991400);
    expect(emu.stats().contact).toMatchObject({ calls: 2, maxEmails: 3, maxMobiles: 1, rateLimited: 1 });
    // Contact calls never count against the monthly quota.
    expect(emu.stats().quotaUsed).toEqual({});
  });
});

describe('emulator --users with a directory file', () => {
  let child: ChildProcess | undefined;
  let dir: string;
  afterAll(() => {
    child?.kill('SIGTERM');
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('serves the e-mails and mobiles of the file, and 1220004 for user ids outside it', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'emu-users-'));
    const file = path.join(dir, 'users.json');
    fs.writeFileSync(file, JSON.stringify([{ user_id: 'emp_7', email: 'seven@corp.example', mobile: '+85291234567' }]));
    child = spawn(process.execPath, [CLI, 'emulator', '--port', '0', '--users', file], { env: { PATH: process.env.PATH, NODE_ENV: 'test' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      child!.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /listening on (http:\/\/\S+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      child!.on('exit', (code) => reject(new Error(`emulator exited ${code}`)));
    });
    const tok = await token(url, 'cli_emulator', 'emulator-secret');
    const r = await batchGetId(url, tok, 'user_id', { mobiles: ['+85291234567'], emails: ['seven@corp.example'], include_resigned: true });
    expect(r.body.data.user_list.map((u: { user_id?: string }) => u.user_id)).toEqual(['emp_7', 'emp_7']);
    const create = await fetch(`${url}/open-apis/attendance/v1/user_approvals?employee_type=employee_id`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tok}` },
      body: JSON.stringify({
        user_approval: {
          user_id: 'someone_else',
          date: '20261201',
          leaves: [{ uniq_id: 'ANNUAL', unit: 1, interval: 28800, start_time: '2026-12-01 09:00:00', end_time: '2026-12-01 18:00:00', i18n_names: { ch: '年假', en: 'Annual', ja: '年休' }, default_locale: 'ch', reason: 'x', idempotent_id: 'k-1' }],
        },
      }),
    });
    expect(((await create.json()) as { code: number }).code).toBe(1220004);
  }, 30_000);
});

describe('contact client budget', () => {
  let emu: Emulator;
  beforeAll(async () => {
    emu = await startEmulator({ directory: [{ user_id: 'u1', email: 'a@x.example' }], contactRateLimit: { perSecond: 5, perMinute: 1000 } });
  });
  afterAll(async () => emu?.close());

  it('keeps to its own per-second budget (no 429 from a server that allows exactly it) and reports unknown addresses without an id', async () => {
    const tokens = new TokenProvider({ appId: emu.appId, appSecret: emu.appSecret, baseUrl: emu.url, timeoutMs: 3000 });
    const contact = new ContactClient({ baseUrl: emu.url, tokens, perSecond: 5 });
    const answers = await Promise.all(Array.from({ length: 12 }, () => contact.batchGetId('user_id', { emails: ['a@x.example', 'zz@x.example'] })));
    expect(emu.stats().contact).toMatchObject({ calls: 12, rateLimited: 0 });
    for (const a of answers) expect(a).toEqual([{ email: 'a@x.example', userId: 'u1', resigned: false }, { email: 'zz@x.example', resigned: false }]);
    await expect(contact.batchGetId('user_id', { emails: Array.from({ length: 51 }, (_, i) => `p${i}@x.example`) })).rejects.toThrow(/at most 50/);
  }, 30_000);
});
