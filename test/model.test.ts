import { spawn } from 'node:child_process';
import path from 'node:path';
import type { LedgerEntry } from '../src/emulator/index.js';
import { createModelSchema, judge, ModelSource } from '../model/source.js';
import { createTestDatabase, type TestDatabase } from './helpers/databases.js';

/*
 * The bounded run of the model test (`npm run test:model -- --histories 5000` runs it in
 * earnest): a fixed seed, a few dozen histories on SQLite, operator actions through the
 * CLI's entry point, SIGKILLed `run` processes, Feishu faults. Every history must end with
 * Feishu holding exactly the approved source rows, by content.
 */

const MODEL = path.resolve('dist/model/model.js');
/** The step types of the bounded run: every one (MODEL_STEPS narrows it, e.g. `all,-kill`). */
const STEPS = process.env.MODEL_STEPS ?? 'all';

function runModel(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MODEL, ...args], { env: { PATH: process.env.PATH, TZ: 'UTC' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('model test (bounded)', () => {
  it('seeded histories of changes, operator actions and faults end with Feishu matching the source: 0 violations', async () => {
    const r = await runModel(['--histories', '15', '--seed', '2026', '--dialect', 'sqlite', '--steps', STEPS, '--shrink', '1', '--shrink-runs', '25', '--command-timeout', '30'], 170_000);
    const lines = r.stdout.trim().split('\n');
    const last = lines[lines.length - 1] ?? '';
    const m = /^model: (\d+) histories, (\d+) steps, (\d+) faults, (\d+) violations$/.exec(last);
    if (!m) process.stderr.write(r.stdout + r.stderr);
    expect(m).not.toBeNull();
    const [, histories, steps, faults, violations] = m!.map(Number);
    // Not a vacuous pass: every history ran, with steps and faults.
    expect(histories).toBe(15);
    expect(steps).toBeGreaterThan(15 * 6);
    expect(faults).toBeGreaterThan(10);
    expect(r.stdout).toMatch(/[1-9]\d* SIGKILLs/);
    // On failure the output holds each failing history and the shrunk one, as steps.
    if (violations !== 0) process.stderr.write(r.stdout);
    expect(violations).toBe(0);
    expect(r.code).toBe(0);
  }, 180_000);
});

describe('model test: histories it once found failing', () => {
  it('a failed create whose row turns invalid (a join multiplies it) and back is sent after the retry, not superseded', async () => {
    const steps = [
      { t: 'insert', kind: 'leave', emp: 1, day: -5, hour: 14, hours: 2, approved: true },
      { t: 'scope', emp: 1 },
      { t: 'once' },
      { t: 'dupJoin', ref: 94 },
      { t: 'rescan' },
    ];
    const r = await runModel(['--dialect', 'sqlite', '--seed', '4250618088', '--shrink', '0', '--replay', JSON.stringify(steps)], 100_000);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('model: 1 histories, 5 steps, 1 faults, 0 violations');
    expect(r.code).toBe(0);
  }, 110_000);
});

describe('the model oracle judges by content', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('sqlite', 'model_oracle');
    await createModelSchema(db.db);
  });
  afterAll(async () => {
    await db?.drop();
  });

  const entry = (kind: 'leave' | 'overtime', userId: string, start: string, end: string, status = 2): LedgerEntry => ({
    approvalId: `${Math.random()}`,
    kind,
    userId,
    date: start.slice(0, 10).replace(/-/g, ''),
    idempotentId: null,
    item: { start_time: start, end_time: end },
    status,
    createdAt: 0,
    revokedAt: null,
  });

  it('counts missing, duplicated, not revoked and unexpected approvals', async () => {
    const model = new ModelSource(db.db);
    const a = await model.insert('leave', { emp: 0, day: 1, hour: 9, hours: 2, approved: true });
    const b = await model.insert('leave', { emp: 1, day: 2, hour: 9, hours: 2, approved: true });
    const c = await model.insert('overtime', { emp: 2, day: 3, hour: 18, hours: 1, approved: true });
    const wall = (d: typeof a.start) => d.toFormat('yyyy-MM-dd HH:mm:ss');
    const aOld = { start: wall(a.start), end: wall(a.end) };
    await model.editTimes(a, 60);
    await model.setStatus(c, 'cancelled');
    const ok = await judge(db.db, model, [entry('leave', 'E001', wall(a.start), wall(a.end)), entry('leave', 'E002', wall(b.start), wall(b.end)), entry('overtime', 'E003', wall(c.start), wall(c.end), 4)], { excuseHidden: false });
    expect({ ...ok, examples: [] }).toEqual({ missing: 0, duplicated: 0, notRevoked: 0, unexpected: 0, examples: [] });

    const bad = await judge(
      db.db,
      model,
      [
        entry('leave', 'E001', wall(a.start), wall(a.end)),
        entry('leave', 'E001', aOld.start, aOld.end), // an earlier version still approved
        entry('overtime', 'E003', wall(c.start), wall(c.end)), // cancelled, still approved
        entry('leave', 'E001', wall(a.start), wall(a.end)), // twice
        entry('leave', 'E004', '2020-01-01 09:00:00', '2020-01-01 10:00:00'), // never in the source
        // b is missing
      ],
      { excuseHidden: false },
    );
    expect({ missing: bad.missing, duplicated: bad.duplicated, notRevoked: bad.notRevoked, unexpected: bad.unexpected }).toEqual({ missing: 1, duplicated: 1, notRevoked: 2, unexpected: 1 });

    // Before the rescan, a row deleted outright is set aside (only a rescan can see it).
    await model.hardDelete(b);
    const before = await judge(db.db, model, [entry('leave', 'E001', wall(a.start), wall(a.end)), entry('leave', 'E002', wall(b.start), wall(b.end))], { excuseHidden: true });
    expect(before.notRevoked).toBe(0);
    const after = await judge(db.db, model, [entry('leave', 'E001', wall(a.start), wall(a.end)), entry('leave', 'E002', wall(b.start), wall(b.end))], { excuseHidden: false });
    expect(after.notRevoked).toBe(1);
  });
});

describe('the emulator seals a period both ways', () => {
  it('refuses a revoke of an approval whose date is sealed, and accepts it once unsealed', async () => {
    const { startEmulator } = await import('../src/emulator/index.js');
    const emu = await startEmulator({ strict: true });
    try {
      const post = async (p: string, body: unknown, token?: string) => {
        const res = await fetch(`${emu.url}${p}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
        return (await res.json()) as Record<string, any>;
      };
      const { tenant_access_token: token } = await post('/open-apis/auth/v3/tenant_access_token/internal', { app_id: emu.appId, app_secret: emu.appSecret });
      const created = await post(
        '/open-apis/attendance/v1/user_approvals?employee_type=employee_no',
        {
          user_approval: {
            user_id: 'E001',
            date: '20260301',
            overtime_works: [{ duration: 1, unit: 2, category: 1, type: 2, start_time: '2026-03-01 18:00:00', end_time: '2026-03-01 19:00:00', idempotent_id: 'k-seal-1' }],
          },
        },
        token,
      );
      expect(created.code).toBe(0);
      const approvalId = created.data.user_approval.overtime_works[0].approval_id as string;
      emu.setOptions({ sealedUntil: '20260401' });
      const refused = await post('/open-apis/attendance/v1/approval_infos/process', { approval_id: approvalId, approval_type: 'overtime', status: 4 }, token);
      expect(refused.code).toBe(1220600);
      expect(refused.msg).toMatch(/sealed/);
      expect(emu.ledger()[0]!.status).toBe(2);
      emu.setOptions({ sealedUntil: null });
      const ok = await post('/open-apis/attendance/v1/approval_infos/process', { approval_id: approvalId, approval_type: 'overtime', status: 4 }, token);
      expect(ok.code).toBe(0);
      expect(emu.ledger()[0]!.status).toBe(4);
    } finally {
      await emu.close();
    }
  });
});
