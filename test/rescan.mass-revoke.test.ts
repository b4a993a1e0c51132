import { DateTime } from 'luxon';
import type { TestDatabase } from './helpers/databases.js';
import { withSampleWorld, type SampleWorld } from './helpers/sampleWorld.js';
import { activeInLedger } from './helpers/pipeline.js';
import { runCli } from './helpers/cli.js';
import type { Emulator } from '../src/emulator/index.js';
import { stateTables } from '../src/state/tables.js';

const t = stateTables('attendance_sync_');

/*
 * A source that is momentarily empty (truncate and reload, a failover to an empty replica)
 * looks to the rescan as if every record was deleted. It must not revoke them all.
 */
describe('a rescan against an emptied source, through the CLI', () => {
  let w: SampleWorld;
  let db: TestDatabase;
  let emu: Emulator;
  let env: NodeJS.ProcessEnv;
  let cfg: string;
  beforeAll(async () => {
    w = await withSampleWorld('sqlite', 'mass_revoke', {
      sample: { employees: 8, leaves: 24, overtime: 0, trips: 0, outs: 0, seed: 23, startDate: DateTime.utc().minus({ days: 10 }).toISODate()!, days: 8, now: DateTime.utc().minus({ hours: 2 }) },
      emulator: { strict: true, rateLimit: 500 },
      tweak: (raw) => {
        raw.kinds = { leave: raw.kinds.leave };
        raw.feishu.retry_base_ms = 20;
        raw.log = { level: 'info', format: 'json' };
      },
    });
    ({ db, emu, env, cfg } = w);
  });
  afterAll(async () => w?.close());

  it('refuses the mass revoke with one error line and exit 1; a single deletion and --allow-mass-revoke go through', async () => {
    expect((await runCli(['--config', cfg, 'once'], { env })).code).toBe(0);
    const approved = activeInLedger(emu.ledger()).leave.length;
    expect(approved).toBeGreaterThan(5);

    // One record deleted outright: an ordinary deletion, revoked by the rescan.
    const one = (await db.db('leave_requests').where({ status: 'approved' }).whereNull('deleted_at').orderBy('id').first('id')) as { id: number };
    await db.db('leave_requests').where({ id: one.id }).delete();
    const single = await runCli(['--config', cfg, 'once', '--rescan'], { env });
    expect(single.code).toBe(0);
    expect(activeInLedger(emu.ledger()).leave).toHaveLength(approved - 1);

    // The table is emptied (the first half of a truncate-and-reload).
    const saved = (await db.db('leave_requests').select('*')) as Array<Record<string, unknown>>;
    await db.db('leave_requests').delete();
    const refused = await runCli(['--config', cfg, 'once', '--rescan'], { env });
    expect(refused.code).toBe(1);
    const errors = refused.stderr.split('\n').filter((l) => l.includes('"level":"error"'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/refused to revoke \d+ of the \d+ leave records .*sync\.max_revoke_fraction.*--allow-mass-revoke/);
    expect(activeInLedger(emu.ledger()).leave).toHaveLength(approved - 1);
    expect(await db.db(t.syncRecords).where({ operation: 'revoke' }).count({ n: '*' }).first()).toMatchObject({ n: 1 });
    const status = await runCli(['--config', cfg, 'status'], { env });
    expect(status.stdout).toMatch(/#\d+ cycle .* partial.*revokes refused \d+/);

    // The reload: nothing was lost on the way.
    await db.db.batchInsert('leave_requests', saved, 50);
    expect((await runCli(['--config', cfg, 'once', '--rescan'], { env })).code).toBe(0);
    expect(activeInLedger(emu.ledger()).leave).toHaveLength(approved - 1);

    // Deliberately: the operator confirms that the records are gone.
    await db.db('leave_requests').delete();
    const allowed = await runCli(['--config', cfg, 'once', '--rescan', '--allow-mass-revoke'], { env });
    expect(allowed.code).toBe(0);
    expect(activeInLedger(emu.ledger()).leave).toHaveLength(0);
  }, 120_000);
});
