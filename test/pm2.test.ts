import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { DateTime } from 'luxon';
import YAML from 'yaml';
import { createTestDatabase, type TestDatabase } from './helpers/databases.js';
import { prepareSample } from './helpers/pipeline.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { sampleNow, sqlTime } from '../src/sample/index.js';

const run = promisify(execFile);
const PM2 = path.resolve('node_modules/pm2/bin/pm2');

/**
 * ecosystem.config.js under a real pm2 (its own PM2_HOME): start in production mode, see it
 * sync, reload it (start/stop overlap), stop it, and check every shutdown was graceful.
 */
describe('pm2', () => {
  let db: TestDatabase;
  let emu: Emulator;
  let home: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    db = await createTestDatabase('sqlite', 'pm2');
    await prepareSample(db, { employees: 5, leaves: 10, overtime: 3, trips: 2, outs: 3, seed: 9, now: DateTime.utc().minus({ minutes: 5 }) });
    emu = await startEmulator({ strict: true });
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'pm2-'));
    const raw = YAML.parse(fs.readFileSync('config/attendance-sync.example.sqlite.yaml', 'utf8'));
    raw.sync.schedule = '*/2 * * * * *';
    const cfg = path.join(home, 'config.yaml');
    fs.writeFileSync(cfg, YAML.stringify(raw));
    env = {
      ...process.env,
      PM2_HOME: home,
      ATTENDANCE_SYNC_CONFIG: cfg,
      SOURCE_DATABASE_URL: db.url,
      FEISHU_BASE_URL: emu.url,
      FEISHU_APP_ID: emu.appId,
      FEISHU_APP_SECRET: emu.appSecret,
    };
  });
  afterAll(async () => {
    await run(process.execPath, [PM2, 'kill'], { env }).catch(() => undefined);
    await emu?.close();
    await db?.drop();
  });

  it('starts the worker from ecosystem.config.js, syncs, hands over on reload without two senders, and stops cleanly', async () => {
    await run(process.execPath, [PM2, 'start', 'ecosystem.config.js', '--env', 'production'], { env, cwd: process.cwd() });
    const end = Date.now() + 30_000;
    while (Date.now() < end && emu.stats().created === 0) await new Promise((r) => setTimeout(r, 200));
    expect(emu.stats().created).toBeGreaterThan(0);
    const list = JSON.parse((await run(process.execPath, [PM2, 'jlist'], { env })).stdout) as Array<{ name: string; pm2_env: { status: string; restart_time: number; pm_err_log_path: string; pm_out_log_path: string } }>;
    const app = list.find((a) => a.name === 'attendance-sync');
    expect(app?.pm2_env.status).toBe('online');
    expect(app?.pm2_env.restart_time).toBe(0);
    const readLogs = () => fs.readFileSync(app!.pm2_env.pm_err_log_path, 'utf8') + fs.readFileSync(app!.pm2_env.pm_out_log_path, 'utf8');

    // pm2 reload: the new process starts (and waits for the lock) before the old one stops.
    await run(process.execPath, [PM2, 'reload', 'attendance-sync'], { env });
    const until = Date.now() + 30_000;
    while (Date.now() < until && (readLogs().match(/"message":"leader lock acquired"/g) ?? []).length < 2) await new Promise((r) => setTimeout(r, 200));
    const text = readLogs();
    const acquired = [...text.matchAll(/"message":"leader lock acquired"/g)].map((m) => m.index!);
    expect(acquired.length).toBeGreaterThanOrEqual(2);
    // The new leader took over only after the old one had let go.
    expect(text.indexOf('"message":"worker stopped"')).toBeGreaterThan(-1);
    expect(text.indexOf('"message":"worker stopped"')).toBeLessThan(acquired[1]!);
    await db.db('leave_requests').orderBy('id').limit(1).update({ status: 'approved', deleted_at: null, reason: 'pm2 reload 之后', updated_at: sqlTime(sampleNow()) });
    const synced = Date.now() + 30_000;
    while (Date.now() < synced && !emu.ledger().some((e) => e.item.reason === 'pm2 reload 之后')) await new Promise((r) => setTimeout(r, 200));
    expect(emu.ledger().some((e) => e.item.reason === 'pm2 reload 之后')).toBe(true);
    // Never two senders: every idempotent_id was posted exactly once.
    expect(Object.values(emu.posts()).every((n) => n === 1)).toBe(true);

    await run(process.execPath, [PM2, 'stop', 'attendance-sync'], { env });
    const after = JSON.parse((await run(process.execPath, [PM2, 'jlist'], { env })).stdout) as typeof list;
    expect(after.find((a) => a.name === 'attendance-sync')?.pm2_env.status).toBe('stopped');
    const logs = readLogs();
    expect(logs).toMatch(/"message":"worker stopping","reason":"SIGINT"/);
    expect(logs).toMatch(/"message":"worker stopped"/);
    expect(logs).not.toContain(emu.appSecret);
  }, 90_000);
});
