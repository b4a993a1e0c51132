export { PRETTY } from '../log/logger.js';

interface SummaryInput {
  outcome: string;
  durationMs: number;
  read: number;
  created: number;
  revoked: number;
  unchanged: number;
  invalid: number;
  sent: number;
  failed: number;
  dead: number;
  halted: number;
  outboxDepth: number;
  error?: string;
}

/** The `cycle finished` line as a person reads it in a terminal: outcome, the counts that matter, what is left. */
export function cycleSummary(c: SummaryInput): string {
  const parts = [`read ${c.read}`, `created ${c.created}`, `revoked ${c.revoked}`, `unchanged ${c.unchanged}`, `invalid ${c.invalid}`, `sent ${c.sent}`];
  if (c.failed > 0) parts.push(`failed ${c.failed}`);
  if (c.dead > 0) parts.push(`dead ${c.dead}`);
  if (c.halted > 0) parts.push('sending halted');
  if (c.outboxDepth > 0) parts.push(`${c.outboxDepth} still to send`);
  return `${c.outcome} in ${(c.durationMs / 1000).toFixed(1)}s: ${parts.join(', ')}${c.error ? ` — ${c.error}` : ''}`;
}
