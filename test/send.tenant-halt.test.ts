import { activeInLedger, diffLedger, expectedFromSource } from './helpers/pipeline.js';
import type { CliResult } from './helpers/cli.js';
import { leaveWorld, type LeaveWorld } from './helpers/leaveWorld.js';
import type { EmulatorOptions } from '../src/emulator/index.js';
import { judgeHealth } from '../src/metrics/metrics.js';
import { TENANT_WIDE_USERS } from '../src/send/sender.js';
import { stateTables } from '../src/state/tables.js';

/*
 * A tenant that never finished "API 接入" (every user 1220004), or whose app is disabled
 * (99991662), must not turn every record into a failed one: sending halts with one error line,
 * the operations stay pending, `status` says why, and once Feishu is set up they all go out.
 * A single user out of scope still fails alone.
 */

const t = stateTables('attendance_sync_');

type Setup = LeaveWorld;

async function setup(label: string, emuOpts: Partial<EmulatorOptions>): Promise<Setup> {
  return leaveWorld(label, { sample: { employees: 12, leaves: 40, seed: 9 }, emulator: emuOpts });
}

const errorLines = (r: CliResult) => (r.stdout + r.stderr).split('\n').filter((l) => /"level":"error"/.test(l));
const byStatus = async (s: Setup) => Object.fromEntries(((await s.db.db(t.syncRecords).select('status').count({ n: '*' }).groupBy('status')) as Array<{ status: string; n: number }>).map((r) => [r.status, Number(r.n)]));

describe.each([
  ['API access off (every user 1220004)', { apiAccess: false }, { apiAccess: true }, /1220004 for 5 different users in a row/],
  ['app not in use (99991662)', { appInUse: false }, { appInUse: true }, /credentials or permissions/],
] as const)('%s', (label, broken, fixed, reason) => {
  let s: Setup;
  beforeAll(async () => {
    s = await setup(`halt_${Object.keys(broken)[0]}`, broken);
  });
  afterAll(async () => s?.close());

  it('halts sending with one error line: 0 failed, all pending, status tells why; fixed, everything is sent', async () => {
    const planned = (await expectedFromSource(s.db.db)).leave.length;
    const once = await s.cli('once');
    expect(once.code).toBe(1);
    expect(errorLines(once)).toHaveLength(1);
    expect(errorLines(once)[0]).toMatch(reason);
    expect(errorLines(once)[0]).toMatch(/1220004|99991662/);
    expect(once.stderr).toMatch(/sending was halted/);
    expect(await byStatus(s)).toEqual({ pending: planned });
    // Calls spent on a broken tenant: the first alone, then at most the streak and what was in flight.
    expect(s.emu.stats().calls.create).toBeLessThanOrEqual(TENANT_WIDE_USERS + 8);

    const status = await s.cli('status');
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/sending halted: /);
    expect(status.stdout.split('\n').find((l) => l.includes('sending halted: '))).toMatch(reason);
    expect(status.stdout).toMatch(/sending halted: .*(1220004|99991662)/);

    s.emu.setOptions(fixed);
    // The halted operations wait out the pause (five minutes): let it pass.
    await s.db.db(t.syncRecords).where({ status: 'pending' }).update({ next_attempt_at: 0 });
    const again = await s.cli('once');
    expect(again.code).toBe(0);
    expect(diffLedger(await expectedFromSource(s.db.db), activeInLedger(s.emu.ledger()))).toEqual({ missing: 0, duplicated: 0, unexpected: 0 });
  });
});

describe('a single user out of scope still fails alone', () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setup('halt_single_user', {});
  });
  afterAll(async () => s?.close());

  it('1220004 for one user among many: that user\'s records fail, the rest is sent, no halt', async () => {
    const employees = (await s.db.db('employees').pluck('employee_no')) as string[];
    const outOfScope = employees[0]!;
    s.emu.setOptions({ users: employees.filter((e) => e !== outOfScope) });
    const once = await s.cli('once');
    expect(once.stderr).not.toMatch(/sending was halted/);
    const expected = await expectedFromSource(s.db.db);
    const theirs = expected.leave.filter((x) => x.startsWith(`${outOfScope}|`)).length;
    expect(theirs).toBeGreaterThan(0);
    expect(await byStatus(s)).toEqual({ sent: expected.leave.length - theirs, failed: theirs });
  });
});

describe('/healthz names the halt', () => {
  it('gives the reason of the last cycle', () => {
    const h = judgeHealth({ state: 'leader', startedAt: 0, lastGoodCycleAt: 0, now: 1000, staleAfterMs: 60_000, lastCycle: { at: 1000, outcome: 'partial', halted: 1, haltReason: 'Feishu answered 1220004 for 5 different users in a row' } });
    expect(h.ok).toBe(false);
    expect(h.reasons).toEqual(['sending halted: Feishu answered 1220004 for 5 different users in a row']);
  });
});
