import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { resolveConfig } from '../src/config/load.js';
import type { AnyKindConfig } from '../src/config/schema.js';
import { detectionOf } from '../src/check/detection.js';
import { createTestDatabase, dialectsUnderTest, type TestDatabase } from './helpers/databases.js';
import { prepareSample } from './helpers/pipeline.js';
import { runCli } from './helpers/cli.js';

function exampleRaw(): any {
  return YAML.parse(fs.readFileSync('config/attendance-sync.example.postgres.yaml', 'utf8'));
}

function resolved(tweak: (raw: any) => void) {
  const raw = exampleRaw();
  tweak(raw);
  return resolveConfig(raw, { env: { SOURCE_DATABASE_URL: 'sqlite::memory:', FEISHU_APP_ID: 'cli_x', FEISHU_APP_SECRET: 'secret' } });
}

describe('how each kind detects changes, and what it cannot see', () => {
  it('timestamp cursor with a rescan: the lookback and the rescan window are named', () => {
    const config = resolved(() => {});
    const d = detectionOf(config, config.kinds.leave as AnyKindConfig);
    expect(d.mode).toMatch(/^changes by timestamp: keyset on \("updated_at", "id"\), re-reading 600 s behind the watermark/);
    expect(d.mode).toMatch(/rescan of effective dates of the last 45 days on sync\.rescan_schedule "17 3 \* \* \*", next \d{4}-\d{2}-\d{2}/);
    expect(d.blind).toMatch(/an edit that leaves "updated_at" unchanged, a hard delete .* wait for the rescan; a change to a record whose start_at lies outside the window is never seen/);
    expect(d.warn).toBe(false);
  });

  it('id cursor: new rows by id with the id lookback; status changes only by the rescan', () => {
    const config = resolved((raw) => {
      raw.kinds.leave.cursor = { mode: 'id', lookback_ids: 250 };
      raw.sync.rescan_window_days = 'all';
    });
    const d = detectionOf(config, config.kinds.leave as AnyKindConfig);
    expect(d.mode).toMatch(/^new rows by id: keyset on "id", re-reading the last 250 ids each poll/);
    expect(d.mode).toMatch(/status changes, edits and deletions by a rescan of every effective date \(the whole table\)/);
    expect(d.blind).toBe('a change to an existing row reaches Feishu only at the next rescan');
    expect(d.warn).toBe(false);
  });

  it('without a rescan an id cursor never sees a cancellation: a warning', () => {
    const config = resolved((raw) => {
      raw.kinds.leave.cursor = { mode: 'id', lookback_ids: 0 };
      raw.sync.rescan_window_days = 0;
    });
    const d = detectionOf(config, config.kinds.leave as AnyKindConfig);
    expect(d.mode).toMatch(/no id lookback/);
    expect(d.blind).toMatch(/status changes \(approvals, cancellations\), edits and deletions of existing rows are never seen/);
    expect(d.warn).toBe(true);
  });
});

describe.each(dialectsUnderTest())('check-config prints the detection mode per kind (%s)', (dialect) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase(dialect, `detect_${dialect}`);
    await prepareSample(db, { employees: 3, leaves: 5, overtime: 5, trips: 0, outs: 0, seed: 2 });
  });
  afterAll(async () => db?.drop());

  it('one line how, one line what it cannot see; a blind mode warns', async () => {
    const raw = exampleRaw();
    raw.kinds.leave.cursor = { mode: 'id' };
    raw.sync.rescan_window_days = 0;
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'detect-')), 'config.yaml');
    fs.writeFileSync(file, YAML.stringify(raw));
    const res = await runCli(['check-config', '--config', file], { env: { SOURCE_DATABASE_URL: db.url, FEISHU_APP_ID: 'cli_x', FEISHU_APP_SECRET: 'secret' } });
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/ok\s+kinds\.leave\.cursor: detects new rows by id: keyset on "id", re-reading the last 100 ids each poll/);
    expect(res.stdout).toMatch(/WARN\s+kinds\.leave\.cursor: cannot see: status changes \(approvals, cancellations\)/);
    expect(res.stdout).toMatch(/ok\s+kinds\.overtime\.cursor: detects changes by timestamp: keyset on \("updated_at", "id"\)/);
    expect(res.stdout).toMatch(/WARN\s+kinds\.overtime\.cursor: cannot see: an edit that leaves "updated_at" unchanged, a row deleted outright/);
  });
});
