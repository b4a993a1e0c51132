import type { SendCounts } from '../send/sender.js';

/** What a run that sends (a cycle, a backfill) reports: its error, its send counts, what still waits. */
export interface SendOutcome {
  readonly error?: string | undefined;
  readonly send: SendCounts;
  /** Operations still due in the outbox once sending stopped (Feishu down, backing off, held). */
  readonly outboxDepth: number;
}

/** What kept a run from reaching Feishu with everything, in one sentence for the operator (null when nothing did). */
export function sendTrouble(r: SendOutcome, what = 'the cycle'): string | null {
  if (r.error) return `${what} failed: ${r.error}`;
  const parts: string[] = [];
  if (r.send.halted > 0) parts.push(r.send.haltReason ? `sending was halted: ${r.send.haltReason}` : 'sending was halted (credentials, permission or quota: see the log)');
  if (r.send.failed > 0) parts.push(`${r.send.failed} operation(s) failed (Feishu refused them: fix, then \`retry\`)`);
  if (r.send.dead > 0) parts.push(`${r.send.dead} operation(s) are dead (attempts used up: \`retry --status dead\`)`);
  if (r.outboxDepth > 0) parts.push(`${r.outboxDepth} planned operation(s) could not be sent yet: they wait for a retry, or are held behind a failed or dead revoke (see Held in status)`);
  if (parts.length === 0) return null;
  return `not everything planned reached Feishu: ${parts.join('; ')}; see \`npx attendance-sync status\``;
}
