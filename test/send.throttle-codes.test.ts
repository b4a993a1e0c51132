import { DateTime } from 'luxon';
import { createTestDatabase, type TestDatabase } from './helpers/databases.js';
import { expectLedgerMatchesSource, prepareSample, sampleConfig, testPipeline } from './helpers/pipeline.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { runCycle } from '../src/pipeline/cycle.js';
import { statusCounts } from '../src/state/outbox.js';
import { stateTables } from '../src/state/tables.js';

/*
 * Besides 99991400, Feishu's generic code list has 1000004 (method rate limited) and 1000005
 * (app rate limited). Both are throttling: the worker waits and sends again, without using up
 * an operation's attempts, so nothing ends failed or dead because of them.
 */

const t = stateTables('attendance_sync_');

describe('throttling codes 1000004 and 1000005 (pg)', () => {
  let db: TestDatabase;
  let emu: Emulator;
  beforeAll(async () => {
    db = await createTestDatabase('pg', 'pace_throttle');
    await prepareSample(db, { employees: 6, leaves: 24, overtime: 8, trips: 0, outs: 0, seed: 15, approvedShare: 1, now: DateTime.utc().minus({ hours: 1 }) });
    emu = await startEmulator({ strict: true, seed: 21, faults: { '1000004': 0.15, '1000005': 0.15 } });
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  it('are retried like a 429, never counted as attempts: every record ends in Feishu, none failed or dead', async () => {
    // One attempt only: a code taken for an ordinary error would end its record failed or dead.
    const config = sampleConfig(db.url, emu, (raw) => {
      raw.feishu.max_attempts = 1;
      raw.feishu.concurrency = 8;
    });
    const p = testPipeline(db, config);
    let throttled = 0;
    for (let cycle = 0; cycle < 6; cycle++) {
      const r = await runCycle(p.deps);
      throttled += r.client.rateLimited;
      const counts = Object.fromEntries((await statusCounts(db.db, t)).map((c) => [c.status, c.count]));
      expect(counts.failed ?? 0).toBe(0);
      expect(counts.dead ?? 0).toBe(0);
      if (r.outboxDepth === 0) break;
    }
    const faults = emu.stats().faults;
    expect(emu.stats().calls.create).toBeGreaterThan(10);
    expect(faults['1000004'] ?? 0).toBeGreaterThan(0);
    expect(faults['1000005'] ?? 0).toBeGreaterThan(0);
    expect(throttled).toBe((faults['1000004'] ?? 0) + (faults['1000005'] ?? 0));
    await expectLedgerMatchesSource(db, emu);
  }, 120_000);
});
