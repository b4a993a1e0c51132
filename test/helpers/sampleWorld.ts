import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { createTestDatabase, type TestDatabase } from './databases.js';
import { prepareSample } from './pipeline.js';
import { runCli, type CliResult } from './cli.js';
import { startEmulator, type Emulator, type EmulatorOptions } from '../../src/emulator/index.js';
import type { SeedOptions } from '../../src/sample/seed.js';
import type { DialectName } from '../../src/db/url.js';

/**
 * The world most CLI suites set up alike: a throw-away database on `dialect` holding the sample
 * HR tables (and the state tables), the emulator, and the dialect's example configuration with
 * the suite's tweaks written to a temp file, plus the environment that points it at both.
 */
export interface SampleWorld {
  readonly db: TestDatabase;
  readonly emu: Emulator;
  /** Temp directory of the configuration file (removed by `close`). */
  readonly dir: string;
  /** Path of the configuration file. */
  readonly cfg: string;
  /** SOURCE_DATABASE_URL and the emulator's URL and credentials. */
  readonly env: NodeJS.ProcessEnv;
  /** The configuration as last written. */
  readonly raw: any;
  /** `attendance-sync --config <cfg> …` with `env`. */
  cli: (...args: string[]) => Promise<CliResult>;
  /** Rewrite the configuration between runs. */
  reconfigure: (tweak: (raw: any) => void) => void;
  close: () => Promise<void>;
}

export const EXAMPLE_CONFIG: Readonly<Record<DialectName, string>> = {
  pg: 'config/attendance-sync.example.postgres.yaml',
  mysql: 'config/attendance-sync.example.mysql.yaml',
  sqlite: 'config/attendance-sync.example.sqlite.yaml',
};

export async function withSampleWorld(
  dialect: DialectName,
  label: string,
  o: { sample: SeedOptions; emulator?: Partial<EmulatorOptions>; tweak?: (raw: any) => void; cliTimeoutMs?: number },
): Promise<SampleWorld> {
  const db = await createTestDatabase(dialect, label);
  await prepareSample(db, o.sample);
  const emu = await startEmulator(o.emulator);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${label.replace(/[^a-z0-9]+/gi, '-')}-`));
  const raw = YAML.parse(fs.readFileSync(EXAMPLE_CONFIG[dialect], 'utf8'));
  o.tweak?.(raw);
  const cfg = path.join(dir, 'config.yaml');
  fs.writeFileSync(cfg, YAML.stringify(raw));
  const env = { SOURCE_DATABASE_URL: db.url, FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: emu.appId, FEISHU_APP_SECRET: emu.appSecret };
  return {
    db,
    emu,
    dir,
    cfg,
    env,
    raw,
    cli: (...args) => runCli(['--config', cfg, ...args], { env, ...(o.cliTimeoutMs ? { timeoutMs: o.cliTimeoutMs } : {}) }),
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
