import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DateTime } from 'luxon';
import YAML from 'yaml';
import { createTestDatabase, type TestDatabase } from './helpers/databases.js';
import { expectLedgerMatchesSource, prepareSample } from './helpers/pipeline.js';
import { runCli } from './helpers/cli.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { stateTables } from '../src/state/tables.js';

const t = stateTables('attendance_sync_');

function writeConfig(dir: string, tweak: (raw: any) => void, name: string): string {
  const raw = YAML.parse(fs.readFileSync('config/attendance-sync.example.sqlite.yaml', 'utf8'));
  raw.sync.lock_lease_seconds = 5;
  raw.feishu.retry_base_ms = 20;
  raw.log = { level: 'info', format: 'json' };
  tweak(raw);
  const file = path.join(dir, name);
  fs.writeFileSync(file, YAML.stringify(raw));
  return file;
}

describe('backfill during a Feishu outage', () => {
  let db: TestDatabase;
  let emu: Emulator;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    db = await createTestDatabase('sqlite', 'bfoutage');
    await prepareSample(db, { employees: 5, leaves: 4, overtime: 2, trips: 0, outs: 0, seed: 4, approvedShare: 1, startDate: '2026-03-02', days: 5, now: DateTime.utc().minus({ hours: 2 }) });
    emu = await startEmulator({ strict: true, rateLimit: 500 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bfoutage-'));
    env = { SOURCE_DATABASE_URL: db.url, FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: emu.appId, FEISHU_APP_SECRET: emu.appSecret };
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  it('exits 1 and says what is pending; the run is partial; a later backfill completes it', async () => {
    const args = ['backfill', '--from', '2026-03-01', '--to', '2026-03-31'];
    emu.setOptions({ faults: { '5xx': 1 } });
    try {
      const cfg = writeConfig(dir, (raw) => (raw.feishu.retry_base_ms = 600_000), 'outage.yaml');
      const res = await runCli(['--config', cfg, ...args], { env });
      expect(res.stderr).toMatch(/attendance-sync backfill: not everything planned reached Feishu: \d+ planned operation\(s\) could not be sent yet/);
      expect(res.code).toBe(1);
      const pending = Number(((await db.db(t.syncRecords).where({ status: 'pending' }).count({ n: '*' }).first()) as { n: number }).n);
      expect(pending).toBeGreaterThan(0);
      expect(res.stderr).toContain(`${pending} planned operation(s)`);
      const run = (await db.db(t.runs).orderBy('id', 'desc').first()) as { outcome: string; type: string };
      expect(run).toMatchObject({ type: 'backfill', outcome: 'partial' });
      expect(emu.ledger()).toHaveLength(0);
    } finally {
      emu.setOptions({ faults: {} });
      await db.db(t.syncRecords).where({ status: 'pending' }).update({ next_attempt_at: 0 });
    }
    const cfg = writeConfig(dir, () => {}, 'ok.yaml');
    const res = await runCli(['--config', cfg, ...args], { env });
    expect(res.stderr).not.toMatch(/attendance-sync backfill:/);
    expect(res.code).toBe(0);
    await expectLedgerMatchesSource(db, emu);
  });
});
