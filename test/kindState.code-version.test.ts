import { DateTime } from 'luxon';
import { createTestDatabase, type TestDatabase } from './helpers/databases.js';
import { activeInLedger, expectLedgerMatchesSource, prepareSample, sampleConfig, testPipeline } from './helpers/pipeline.js';
import { startEmulator, type Emulator } from '../src/emulator/index.js';
import { runCycle } from '../src/pipeline/cycle.js';
import { mappingHash } from '../src/pipeline/kindState.js';
import { PACKAGE_VERSION } from '../src/version.js';
import { stateTables } from '../src/state/tables.js';

/**
 * A release can change how rows map without any configuration change: the mapping hash
 * carries the mapper's code identity, so the first cycle after an upgrade judges invalid
 * records again.
 */
const T = stateTables('attendance_sync_');

describe('mapping hash and the release', () => {
  let db: TestDatabase;
  let emu: Emulator;
  beforeAll(async () => {
    db = await createTestDatabase('sqlite', 'codever');
    await prepareSample(db, { employees: 4, leaves: 6, overtime: 0, trips: 0, outs: 0, seed: 9, approvedShare: 1, startDate: '2026-03-02', days: 5, now: DateTime.utc().minus({ hours: 2 }) });
    emu = await startEmulator({ strict: true, rateLimit: 500 });
  });
  afterAll(async () => {
    await emu?.close();
    await db?.drop();
  });

  it('differs between releases and is the package version by default', () => {
    const config = sampleConfig(db.url, emu);
    const cfg = config.kinds.leave!;
    expect(PACKAGE_VERSION).toMatch(/^\d+\.\d+\.\d+/);
    expect(mappingHash(config, cfg)).toBe(mappingHash(config, cfg, PACKAGE_VERSION));
    expect(mappingHash(config, cfg, '9.9.9')).not.toBe(mappingHash(config, cfg, PACKAGE_VERSION));
  });

  it('an invalid record is judged again on the first cycle of a new release, not before', async () => {
    const config = sampleConfig(db.url, emu, (raw) => {
      for (const k of ['overtime', 'trip', 'out']) delete raw.kinds[k];
      raw.sync.lookback_seconds = 0;
    });
    const id = Number((await db.db('leave_requests').where({ status: 'approved' }).orderBy('updated_at').first('id')).id);
    const original = (await db.db('leave_requests').where({ id }).first('leave_type_code')).leave_type_code as string;
    // Unknown type: the row is invalid (its updated_at is left alone, as a code fix would leave it).
    await db.db('leave_requests').where({ id }).update({ leave_type_code: 'NOPE' });

    const v1 = testPipeline(db, config);
    const first = await runCycle({ ...v1.deps, codeVersion: '1.0.0' });
    expect(first.plan.invalid).toBe(1);
    const sentBefore = activeInLedger(emu.ledger()).leave.length;

    // The row becomes mappable without its cursor moving (what a mapper fix in a release does).
    await db.db('leave_requests').where({ id }).update({ leave_type_code: original });
    const same = await runCycle({ ...v1.deps, codeVersion: '1.0.0' });
    expect(same.plan.created).toBe(0);
    expect(activeInLedger(emu.ledger()).leave.length).toBe(sentBefore);
    expect(await db.db(T.records).where({ kind: 'leave', state: 'invalid' }).count({ n: '*' }).first()).toEqual({ n: 1 });

    const upgraded = await runCycle({ ...v1.deps, codeVersion: '1.0.1' });
    expect(upgraded.outcome).toBe('ok');
    expect(upgraded.plan.created).toBe(1);
    expect(activeInLedger(emu.ledger()).leave.length).toBe(sentBefore + 1);
    await expectLedgerMatchesSource(db, emu);
  });
});
