import { fail, type Answer } from './answers.js';
import { ARRAY_KIND, type Ledger } from './ledger.js';
import type { Kind } from '../kinds.js';

/* What an administrator does in the attendance console (no API call involved), and Feishu losing a record: for tests of reconcile. */

export interface AdminHost {
  readonly ledger: Ledger;
  now(): number;
}

function parseJson(raw: string): Record<string, unknown> {
  try {
    const v = JSON.parse(raw) as unknown;
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

export class AdminActions {
  constructor(private readonly host: AdminHost) {}


  /** An admin withdraws an approval in the console: status 4, no API call involved. */
  revoke(approvalId: string): boolean {
    const entry = this.host.ledger.get(approvalId);
    if (!entry || entry.status !== 2) return false;
    entry.status = 4;
    entry.revokedAt = this.host.now();
    return true;
  }

  /** An approval created by hand or by another system: no idempotent_id unless given. Returns its approval_id. */
  create(o: { userId: string; kind: Kind; item: Record<string, unknown>; date?: string }): string {
    const approvalId = this.host.ledger.newApprovalId();
    const date = o.date ?? String(o.item.start_time ?? '').slice(0, 10).replace(/-/g, '');
    this.host.ledger.add({
      approvalId,
      kind: o.kind,
      userId: o.userId,
      date,
      idempotentId: typeof o.item.idempotent_id === 'string' ? o.item.idempotent_id : null,
      item: { ...o.item, approval_id: approvalId },
      status: 2,
      createdAt: this.host.now(),
      revokedAt: null,
    });
    return approvalId;
  }

  /** An admin edits an approval's fields (times, type) in the console. */
  edit(approvalId: string, fields: Record<string, unknown>): boolean {
    const entry = this.host.ledger.get(approvalId);
    if (!entry) return false;
    Object.assign(entry.item, fields, { approval_id: approvalId });
    return true;
  }

  /** Feishu no longer holds an approval at all (under any status). */
  delete(approvalId: string): boolean {
    return this.host.ledger.delete(approvalId);
  }

  answer(action: string, raw: string): Answer {
    const b = parseJson(raw);
    const id = typeof b.approval_id === 'string' ? b.approval_id : '';
    const done = (applied: boolean) => (applied ? { status: 200, body: { ok: true } } : fail(404, 404, `no approval ${id} (approved) in the ledger`));
    switch (action) {
      case 'revoke':
        return done(this.revoke(id));
      case 'edit':
        return done(this.edit(id, (b.fields ?? {}) as Record<string, unknown>));
      case 'delete':
        return done(this.delete(id));
      case 'create': {
        const kind = ARRAY_KIND[String(b.array ?? '')] ?? (typeof b.kind === 'string' && Object.values(ARRAY_KIND).includes(b.kind as Kind) ? (b.kind as Kind) : undefined);
        if (!kind || typeof b.user_id !== 'string' || typeof b.item !== 'object' || b.item === null) return fail(400, 400, 'admin/create needs kind, user_id and item');
        const approvalId = this.create({ userId: b.user_id, kind, item: b.item as Record<string, unknown>, ...(typeof b.date === 'string' ? { date: b.date } : {}) });
        return { status: 200, body: { ok: true, approval_id: approvalId } };
      }
      default:
        return fail(404, 404, 'not found');
    }
  }
}
