import fs from 'node:fs';
import YAML from 'yaml';
import type { Knex } from 'knex';
import { resolveConfig, type ResolvedConfig } from '../../src/config/load.js';
import { FeishuClient } from '../../src/feishu/client.js';
import { createLogger } from '../../src/log/logger.js';
import type { PipelineDeps } from '../../src/pipeline/deps.js';
import { LookbackWindows } from '../../src/pipeline/lookback.js';
import { stateTables } from '../../src/state/tables.js';
import { migrateLatest } from '../../src/state/migrate.js';
import { createSampleSchema, seedSample, type SeedOptions } from '../../src/sample/index.js';
import type { Emulator, LedgerEntry } from '../../src/emulator/index.js';
import type { TestDatabase } from './databases.js';
import type { Kind } from '../../src/kinds.js';
import { PassThrough } from 'node:stream';

/** The example configuration for the sample schema, pointed at a test database and the emulator. */
export function sampleConfig(url: string, emu: Emulator, tweak: (raw: any) => void = () => {}): ResolvedConfig {
  const raw = YAML.parse(fs.readFileSync('config/attendance-sync.example.postgres.yaml', 'utf8'));
  raw.feishu.retry_base_ms = 20;
  raw.feishu.retry_max_ms = 200;
  raw.feishu.timeout_ms = 2_000;
  raw.feishu.max_attempts = 20;
  raw.log = { level: 'warn', format: 'json' };
  tweak(raw);
  return resolveConfig(raw, {
    env: { SOURCE_DATABASE_URL: url, FEISHU_BASE_URL: emu.url, FEISHU_APP_ID: emu.appId, FEISHU_APP_SECRET: emu.appSecret },
  });
}

export interface TestPipeline {
  deps: PipelineDeps;
  logs: () => string;
}

/** Pipeline dependencies on a test database (source and state in one), logging into a buffer. */
export function testPipeline(t: TestDatabase, config: ResolvedConfig, owner = 'test-owner'): TestPipeline {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString()));
  const logger = createLogger({ level: 'info', format: 'json', stream });
  const client = new FeishuClient({
    baseUrl: config.feishu.base_url,
    appId: config.feishu.app_id,
    appSecret: config.feishu.app_secret,
    rateLimit: config.feishu.rate_limit,
    timeoutMs: config.feishu.timeout_ms,
    maxAttempts: 2,
    backoffBaseMs: 10,
    backoffCapMs: 50,
    logger,
  });
  return {
    deps: { config, source: t.db, state: t.db, t: stateTables(config.state.table_prefix), client, logger, owner, lookback: new LookbackWindows(config.sync.lookback_seconds * 1000) },
    logs: () => text,
  };
}

export async function prepareSample(t: TestDatabase, seed: SeedOptions): Promise<void> {
  await createSampleSchema(t.db);
  await seedSample(t.db, seed);
  await migrateLatest(t.db, 'attendance_sync_');
}

const TABLE: Record<Kind, string> = { leave: 'leave_requests', overtime: 'overtime_requests', trip: 'trip_requests', out: 'out_requests' };

/**
 * The oracle: what Feishu should hold, computed from the SOURCE tables alone — every approved,
 * not deleted row, as (employee number, start, end) per kind.
 */
export async function expectedFromSource(db: Knex): Promise<Record<Kind, string[]>> {
  const out = {} as Record<Kind, string[]>;
  for (const kind of Object.keys(TABLE) as Kind[]) {
    const table = TABLE[kind];
    let q = db(`${table} as r`).join('employees as e', 'e.id', 'r.employee_id').where('r.status', 'approved').select('e.employee_no', 'r.start_at', 'r.end_at');
    q = kind === 'out' ? q.where('r.is_deleted', 0) : q.whereNull('r.deleted_at');
    const rows = (await q) as Array<{ employee_no: string; start_at: string; end_at: string }>;
    out[kind] = rows.map((r) => `${r.employee_no}|${String(r.start_at).slice(0, 19)}|${String(r.end_at).slice(0, 19)}`).sort();
  }
  return out;
}

/** What the emulator holds as approved, in the oracle's terms. */
export function activeInLedger(ledger: readonly LedgerEntry[]): Record<Kind, string[]> {
  const out = { leave: [], overtime: [], trip: [], out: [] } as Record<Kind, string[]>;
  for (const e of ledger) {
    if (e.status !== 2) continue;
    out[e.kind].push(`${e.userId}|${String(e.item.start_time)}|${String(e.item.end_time)}`);
  }
  for (const k of Object.keys(out) as Kind[]) out[k].sort();
  return out;
}

/** Missing and duplicated approvals against the oracle. */
export function diffLedger(expected: Record<Kind, string[]>, actual: Record<Kind, string[]>): { missing: number; duplicated: number; unexpected: number } {
  let missing = 0;
  let duplicated = 0;
  let unexpected = 0;
  for (const k of Object.keys(expected) as Kind[]) {
    const want = new Map<string, number>();
    for (const x of expected[k]) want.set(x, (want.get(x) ?? 0) + 1);
    const have = new Map<string, number>();
    for (const x of actual[k]) have.set(x, (have.get(x) ?? 0) + 1);
    for (const [x, n] of want) {
      const h = have.get(x) ?? 0;
      if (h < n) missing += n - h;
      if (h > n) duplicated += h - n;
    }
    for (const [x, n] of have) if (!want.has(x)) unexpected += n;
  }
  return { missing, duplicated, unexpected };
}

/** No idempotent_id is stored twice in Feishu (and every stored item has one). */
export function expectNoDuplicateKeys(emu: Emulator): void {
  const keys = emu.ledger().map((e) => e.idempotentId);
  expect(keys.every((k) => typeof k === 'string')).toBe(true);
  expect(new Set(keys).size).toBe(keys.length);
}

/** Feishu holds exactly the approved source rows, each stored once. */
export async function expectLedgerMatchesSource(db: TestDatabase, emu: Emulator): Promise<void> {
  expect(diffLedger(await expectedFromSource(db.db), activeInLedger(emu.ledger()))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });
  expectNoDuplicateKeys(emu);
}
