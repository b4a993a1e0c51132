import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DateTime } from 'luxon';
import YAML from 'yaml';
import { createTestDatabase, type TestDatabase } from './databases.js';
import { prepareSample } from './pipeline.js';
import { runCli, type CliResult } from './cli.js';
import { startEmulator, type Emulator, type EmulatorOptions } from '../../src/emulator/index.js';
import type { SeedOptions } from '../../src/sample/seed.js';

/** A SQLite sample HR database, an emulator and the SQLite example configuration (leave only), driven through the CLI. */
export interface LeaveWorld {
  db: TestDatabase;
  emu: Emulator;
  cli: (...args: string[]) => Promise<CliResult>;
  /** Rewrite the configuration between runs. */
  reconfigure: (tweak: (raw: any) => void) => void;
  close: () => Promise<void>;
}

export async function leaveWorld(
  label: string,
  o: { sample: SeedOptions; emulator?: Partial<EmulatorOptions>; tweak?: (raw: any) => void },
): Promise<LeaveWorld> {
  const db = await createTestDatabase('sqlite', label);
  await prepareSample(db, { overtime: 0, trips: 0, outs: 0, now: DateTime.utc().minus({ hours: 2 }), ...o.sample });
  const emu = await startEmulator({ strict: true, rateLimit: 500, ...o.emulator });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${label}-`));
  const raw = YAML.parse(fs.readFileSync('config/attendance-sync.example.sqlite.yaml', 'utf8'));
  raw.feishu.retry_base_ms = 20;
  raw.feishu.retry_max_ms = 100;
  raw.feishu.timeout_ms = 3_000;
  raw.log = { level: 'info', format: 'json' };
  for (const k of ['overtime', 'trip', 'out']) delete raw.kinds[k];
  o.tweak?.(raw);
  const cfg = path.join(dir, 'config.yaml');
  fs.writeFileSync(cfg, YAML.stringify(raw));
  const env = { SOURCE_DATABASE_URL: db.url, FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: emu.appId, FEISHU_APP_SECRET: emu.appSecret };
  return {
    db,
    emu,
    cli: (...args) => runCli(['--config', cfg, ...args], { env, timeoutMs: 90_000 }),
    reconfigure: (more) => {
      more(raw);
      fs.writeFileSync(cfg, YAML.stringify(raw));
    },
    close: async () => {
      await emu.close();
      await db.drop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
