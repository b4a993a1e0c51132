import type { ResolvedConfig } from '../config/load.js';
import type { AnyKindConfig, LeaveKindConfig } from '../config/schema.js';
import { AppError, describeError } from '../errors.js';
import type { Kind } from '../kinds.js';
import { redact } from '../log/redact.js';
import { describeTypeTable, loadTypeTable } from '../mapping/typeTable.js';
import { contactIdType, resolveSpec } from '../resolve/users.js';
import type { Databases } from '../pipeline/wiring.js';
import type { CheckReport } from './report.js';

/** employee_no can be handed on: a new hire may get a departed person's number (feishu-api.md §11.1.2). */
export function checkEmployeeType(report: CheckReport, config: ResolvedConfig): void {
  if (config.feishu.employee_type !== 'employee_no') return;
  report.warn(
    'feishu.employee_type',
    'employee_no (工号) can be reused: a new hire may receive a departed employee\'s number, and a backfill or late change for the departed person then lands on the new hire. Prefer employee_id, or resolve e-mails or mobiles (fields.user_id with `resolve`)',
  );
}

/** How a kind finds its users and its types: the resolution it uses, the type table it resolves to. */
export async function checkKindMapping(report: CheckReport, dbs: Databases, config: ResolvedConfig, kind: Kind, cfg: AnyKindConfig): Promise<void> {
  const at = `kinds.${kind}`;
  const spec = resolveSpec(cfg);
  if (spec) {
    report.ok(
      `${at}.fields.user_id`,
      `${spec.kind === 'email' ? 'e-mail' : 'mobile'} column "${spec.column}" resolved through contact/v3/users/batch_get_id to ${contactIdType(config)} (scope contact:user.id:readonly${contactIdType(config) === 'user_id' ? ' and contact:user.employee_id:readonly' : ''}; the app's contact data scope must cover the staff), cached ${config.feishu.resolve_ttl_hours} h`,
    );
  }
  if ((kind !== 'leave' && kind !== 'out') || !(cfg as LeaveKindConfig).types_query) return;
  try {
    const table = await loadTypeTable({ source: dbs.source, state: dbs.state, t: dbs.tables, persist: false }, kind, cfg);
    const lines = describeTypeTable(table);
    report.ok(`${at}.types`, `${lines.length} type(s) from types${(cfg as LeaveKindConfig).types ? ' and types_query' : '_query'}:`);
    for (const line of lines) report.ok(`${at}.types`, line);
    for (const p of table.problems) report.warn(`${at}.types_query`, p);
    if (lines.length === 0) report.error(`${at}.types_query`, 'returns no usable type: every record would be invalid');
  } catch (err) {
    report.error(`${at}.types_query`, redact(err instanceof AppError ? err.message : describeError(err)));
  }
}
