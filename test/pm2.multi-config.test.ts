import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { DateTime } from 'luxon';
import YAML from 'yaml';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { activeInLedger, diffLedger, expectedFromSource, prepareSample } from './helpers/pipeline.js';
import { runCli } from './helpers/cli.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { configFiles } from '../src/config/configDir.js';
import type { ConfigSummary } from '../src/cli/commands/statusAll.js';

const run = promisify(execFile);
const PM2 = path.resolve('node_modules/pm2/bin/pm2');

interface Pm2App {
  name: string;
  pid: number;
  pm2_env: { status: string; restart_time: number; pm_out_log_path: string; args?: string[] };
}

interface Sync {
  name: string;
  db: TestDatabase;
  emu: Emulator;
}

let secretEnv: NodeJS.ProcessEnv = {};
const secrets = () => secretEnv;

async function waitFor(what: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end && !(await what())) await new Promise((r) => setTimeout(r, 200));
}

/*
 * One deployment, several syncs (a subsidiary each: its own HR database and Feishu tenant):
 * one configuration file per sync in a directory, one pm2 app per file, and `status --all`
 * over all of them.
 */
describe('several configurations under one pm2', () => {
  const names: Record<string, string> = { pg: 'acme', mysql: 'beta', sqlite: 'gamma' };
  const syncs: Sync[] = [];
  let dir: string;
  let home: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'pm2multi-'));
    dir = path.join(home, 'config');
    fs.mkdirSync(dir);
    env = { ...process.env, PM2_HOME: home, ATTENDANCE_SYNC_CONFIG_DIR: dir };
    delete env.ATTENDANCE_SYNC_CONFIG;
    // A stray global override must not reach any of the syncs: with several files it is blanked.
    env.FEISHU_APP_SECRET = 'not-the-secret-of-any-tenant';
    env.SOURCE_DATABASE_URL = 'sqlite:/nonexistent/hr.sqlite';
    for (const dialect of dialectsUnderTest()) {
      const name = names[dialect]!;
      const db = await createTestDatabase(dialect, `pm2multi_${name}`);
      await prepareSample(db, { employees: 5, leaves: 8, overtime: 3, trips: 0, outs: 0, seed: name.length, now: DateTime.utc().minus({ minutes: 5 }) });
      const emu = await startEmulator({ strict: true, rateLimit: 500 });
      const raw = YAML.parse(fs.readFileSync('config/attendance-sync.example.postgres.yaml', 'utf8'));
      raw.source.url = db.url;
      raw.feishu.base_url = emu.url;
      raw.feishu.app_id = emu.appId;
      // Each file names its own secret variable.
      raw.feishu.app_secret = `\${${name.toUpperCase()}_FEISHU_APP_SECRET}`;
      env[`${name.toUpperCase()}_FEISHU_APP_SECRET`] = emu.appSecret;
      secretEnv = { ...secretEnv, [`${name.toUpperCase()}_FEISHU_APP_SECRET`]: emu.appSecret };
      raw.sync.schedule = '*/2 * * * * *';
      raw.state = { table_prefix: `${name}_sync_` };
      raw.log = { level: 'info', format: 'json' };
      for (const k of ['trip', 'out']) delete raw.kinds[k];
      fs.writeFileSync(path.join(dir, `${name}.yaml`), YAML.stringify(raw));
      syncs.push({ name, db, emu });
    }
    // Examples beside them are not syncs.
    fs.copyFileSync('config/attendance-sync.example.sqlite.yaml', path.join(dir, 'attendance-sync.example.sqlite.yaml'));
  });
  afterAll(async () => {
    await run(process.execPath, [PM2, 'kill'], { env }).catch(() => undefined);
    for (const s of syncs) {
      await s.emu.close();
      await s.db.drop();
    }
    if (home) fs.rmSync(home, { recursive: true, force: true });
  });

  it('ecosystem.config.js and status --all pick the same files: every *.yaml but the examples', async () => {
    const eco = (await import(path.resolve('ecosystem.config.js'))) as { configFiles: (d: string) => Array<{ name: string; file: string }>; buildApps: (e: NodeJS.ProcessEnv) => Array<{ name: string; args: unknown; env: Record<string, string> }> };
    expect(eco.configFiles(dir)).toEqual(configFiles(dir));
    expect(configFiles(dir).map((f) => f.name)).toEqual(syncs.map((s) => s.name).sort());
    const apps = eco.buildApps(env);
    expect(apps.map((a) => a.name)).toEqual(syncs.map((s) => s.name).sort());
    expect(apps.every((a) => a.env.FEISHU_APP_SECRET === '' && a.env.SOURCE_DATABASE_URL === '')).toBe(true);
    // ATTENDANCE_SYNC_CONFIG still means one app for that file.
    expect(eco.buildApps({ ...env, ATTENDANCE_SYNC_CONFIG: path.join(dir, 'acme.yaml') }).map((a) => a.name)).toEqual(['attendance-sync']);
  });

  it('one pm2 app per file, each syncing its own source into its own tenant, each leader of its own state', async () => {
    expect(syncs.length).toBeGreaterThanOrEqual(2);
    // Each sync's state tables under its own prefix, as an operator sets them up.
    for (const s of syncs) {
      const m = await runCli(['--config', path.join(dir, `${s.name}.yaml`), 'migrate'], { env: secrets() });
      expect(m.code).toBe(0);
    }
    await run(process.execPath, [PM2, 'start', 'ecosystem.config.js', '--env', 'production'], { env, cwd: process.cwd() });
    const jlist = async () => JSON.parse((await run(process.execPath, [PM2, 'jlist'], { env })).stdout) as Pm2App[];
    const inSync = async (s: Sync) => {
      const d = diffLedger({ ...(await expectedFromSource(s.db.db)), trip: [], out: [] }, activeInLedger(s.emu.ledger()));
      return d.missing + d.duplicated + d.unexpected === 0 && s.emu.stats().created > 0;
    };
    await waitFor(async () => (await Promise.all(syncs.map(inSync))).every(Boolean), 60_000);
    const apps = await jlist();
    expect(apps.map((a) => a.name).sort()).toEqual(syncs.map((s) => s.name).sort());
    for (const a of apps) {
      expect(a.pm2_env.status).toBe('online');
      expect(a.pm2_env.restart_time).toBe(0);
      expect(a.pm2_env.pm_out_log_path).toBe(path.resolve(`logs/${a.name}.out.log`));
    }
    for (const s of syncs) expect(await inSync(s)).toBe(true);

    // A change in one source reaches its own tenant only.
    const [first, ...others] = syncs;
    await first!.db.db('leave_requests').orderBy('id').limit(1).update({ status: 'approved', deleted_at: null, reason: '只属于一个子公司', updated_at: first!.db.db.fn.now() });
    await waitFor(() => first!.emu.ledger().some((e) => e.item.reason === '只属于一个子公司'), 30_000);
    expect(first!.emu.ledger().some((e) => e.item.reason === '只属于一个子公司')).toBe(true);
    for (const o of others) expect(o.emu.ledger().some((e) => e.item.reason === '只属于一个子公司')).toBe(false);

    // status --all: every configuration with its own leader, its last cycle and no problem.
    const status = await runCli(['status', '--all', '--json'], { env: { ...secrets(), ATTENDANCE_SYNC_CONFIG_DIR: dir } });
    expect(status.stderr).toBe('');
    expect(status.code).toBe(0);
    const all = (JSON.parse(status.stdout) as { configs: ConfigSummary[] }).configs;
    expect(all.map((c) => c.name)).toEqual(syncs.map((s) => s.name).sort());
    for (const c of all) {
      expect(c.problems).toEqual([]);
      expect(c.lock?.owner).toBeTruthy();
      expect(c.lastCycle?.outcome).toBe('ok');
      expect(c.operations.sent).toBeGreaterThan(0);
      expect(c.state).toMatch(new RegExp(`prefix ${c.name}_sync_`));
    }
    expect(new Set(all.map((c) => c.lock?.owner)).size).toBe(all.length);
    // Secrets stay out of it.
    for (const s of syncs) expect(status.stdout).not.toContain(s.emu.appSecret);

    const table = await runCli(['status', '--all', '--config-dir', dir], { env: secrets() });
    expect(table.code).toBe(0);
    for (const s of syncs) expect(table.stdout).toMatch(new RegExp(`^  ${s.name}\\s+\\S+.*prefix ${s.name}_sync_.* ok\\s+\\d+`, 'm'));
  }, 150_000);

  it('status --all reports a file that shares another one\'s state tables and lock, a shared metrics port, and an unreadable one', async () => {
    const shared = YAML.parse(fs.readFileSync(path.join(dir, `${syncs[0]!.name}.yaml`), 'utf8'));
    shared.sync.namespace = 'other';
    shared.feishu.app_secret = 'inline';
    const extra = fs.mkdtempSync(path.join(home, 'more-'));
    for (const f of configFiles(dir)) fs.copyFileSync(f.file, path.join(extra, path.basename(f.file)));
    shared.metrics = { enabled: true, host: '127.0.0.1', port: 19464 };
    fs.writeFileSync(path.join(extra, 'copy.yaml'), YAML.stringify(shared));
    const other = YAML.parse(fs.readFileSync(path.join(dir, `${syncs[1]!.name}.yaml`), 'utf8'));
    other.state = { table_prefix: 'copy2_' };
    other.sync.namespace = 'copy2';
    other.metrics = { enabled: true, host: '127.0.0.1', port: 19464 };
    fs.writeFileSync(path.join(extra, 'copy2.yaml'), YAML.stringify(other));
    fs.writeFileSync(path.join(extra, 'broken.yaml'), 'sync:\n  schedule: "every minute"\n');
    const res = await runCli(['status', '--all', '--config-dir', extra], { env: secrets() });
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(new RegExp(`copy: shares its state tables and leader lock with ${syncs[0]!.name}`));
    expect(res.stdout).toMatch(new RegExp(`${syncs[0]!.name}: shares its state tables and leader lock with copy`));
    expect(res.stdout).toMatch(/broken: configuration: .*sync\.schedule/);
    expect(res.stdout).toMatch(/copy2: listens for metrics on 127\.0\.0\.1:19464 like copy: give each file its own metrics\.port/);
    expect(res.stdout).not.toMatch(/copy2: shares its state/);
  }, 60_000);
});
