import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEmulator } from '../src/emulator/index.js';
import { seededRandom } from '../src/random.js';
import { stateTables } from '../src/state/tables.js';
import type { ChaosDatabase } from '../test/helpers/scratch.js';
import { drain, faultMix, STATE_PREFIX } from './harness.js';
import { verdictOk, verify, type Verdict } from './oracle.js';
import { seedSource, SourceChurn } from './source.js';
import { writeWorkerConfig } from './worker.js';

/*
 * Replay after losing the state: sync (with edits and cancellations, so Feishu also holds
 * revoked approvals), then wipe the sync table, the per-record state and the watermarks, and
 * run `backfill` over the whole date range against the same Feishu. The idempotent_ids are a
 * function of the source alone, so every create is recognised: nothing new is stored, nothing
 * is revoked, and the sync table is rebuilt with the approval_ids Feishu already holds.
 *
 * The source changes here are edits, cancellations, soft deletes and inserts. A row whose
 * content returns to a version already revoked is created again under the next generation,
 * which a state-less replay cannot know (see the report of the chaos test).
 */

export interface ReplayResult {
  /** Approvals Feishu stored during the backfill. */
  readonly newApprovals: number;
  /** Approvals Feishu withdrew during the backfill. */
  readonly newRevokes: number;
  /** Sync-table rows deleted by the wipe. */
  readonly wiped: number;
  /** Sent creates in the rebuilt sync table. */
  readonly rebuilt: number;
  /** Approved approvals in Feishu before the wipe. */
  readonly active: number;
  /** Sent creates whose approval_id is not the one Feishu holds for their idempotent_id. */
  readonly mismatched: number;
  readonly backfillRuns: number;
  readonly calls: number;
  readonly faults: number;
  readonly before: Verdict;
  readonly after: Verdict;
  readonly seconds: number;
}

export async function runReplay(target: ChaosDatabase, o: { records: number; seed: number; faultRate: number; rateLimit?: number; log?: (line: string) => void }): Promise<ReplayResult> {
  const started = Date.now();
  const rate = o.rateLimit ?? 200;
  const t = stateTables(STATE_PREFIX);
  const seeded = await seedSource(target.db, { records: o.records, seed: o.seed });
  const churn = await SourceChurn.open(target.db, seededRandom(o.seed * 7919 + 3), seeded);
  const emu = await startEmulator({ strict: true, seed: o.seed, faults: faultMix(o.faultRate), rateLimit: rate });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attendance-replay-'));
  try {
    const setup = writeWorkerConfig(dir, target.url, emu, { rateLimit: rate });
    const log = o.log;
    await drain(setup, target, ['once'], { log });
    await churn.batch(Math.max(4, Math.round(o.records * 0.05)), 'replay', { insert: 0.3, edit: 0.35, cancel: 0.2, softDelete: 0.1, touch: 0.05 });
    await drain(setup, target, ['once'], { log });
    const before = await verify(target.db, t, emu.ledger());
    const ledgerBefore = emu.ledger();
    const statsBefore = emu.stats();

    // The state is lost: outbox and history, per-record versions, watermarks.
    const wiped = Number(await target.db(t.syncRecords).delete());
    await target.db(t.records).delete();
    await target.db(t.watermarks).delete();

    const backfillRuns = await drain(setup, target, ['backfill', '--from', seeded.from, '--to', seeded.to], { log });
    const statsAfter = emu.stats();
    const ledgerAfter = emu.ledger();
    const after = await verify(target.db, t, ledgerAfter);

    const approvalOf = new Map(ledgerAfter.filter((e) => e.status === 2 && e.idempotentId).map((e) => [e.idempotentId!, e.approvalId]));
    const sent = (await target.db(t.syncRecords).where({ operation: 'create', status: 'sent' }).select('idempotency_key', 'approval_id')) as Array<{ idempotency_key: string; approval_id: string | null }>;
    const mismatched = sent.filter((s) => approvalOf.get(s.idempotency_key) !== s.approval_id).length;
    return {
      newApprovals: statsAfter.created - statsBefore.created,
      newRevokes: statsAfter.revoked - statsBefore.revoked,
      wiped,
      rebuilt: sent.length,
      active: ledgerBefore.filter((e) => e.status === 2).length,
      mismatched,
      backfillRuns,
      calls: statsAfter.calls.create + statsAfter.calls.query + statsAfter.calls.process,
      faults: Object.values(statsAfter.faults).reduce((a, b) => a + (b ?? 0), 0),
      before,
      after,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await emu.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function formatReplay(dialect: string, records: number, r: ReplayResult): string {
  return (
    `${dialect} replay: records ${records}, new approvals ${r.newApprovals}, new revokes ${r.newRevokes}, ` +
    `sync table rebuilt ${r.rebuilt}/${r.active} (approval_id mismatches ${r.mismatched}), missing ${r.after.missing}, duplicated ${r.after.duplicated}, ` +
    `unrevoked ${r.after.unrevoked}, stuck ${r.after.stuck}, backfill runs ${r.backfillRuns}, calls ${r.calls}, faults ${r.faults}, seconds ${r.seconds.toFixed(1)}`
  );
}

export function replayOk(r: ReplayResult): boolean {
  return r.newApprovals === 0 && r.newRevokes === 0 && r.mismatched === 0 && r.rebuilt === r.active && r.rebuilt > 0 && verdictOk(r.before) && verdictOk(r.after);
}
