import type { Knex } from 'knex';
import { DateTime } from 'luxon';
import type { ResolvedConfig } from '../config/load.js';
import { AppError, ExitCode } from '../errors.js';
import type { StateTables } from './tables.js';
import { toMillis } from './values.js';

/*
 * The Feishu tenant a state database belongs to. What the sync table calls `sent` exists in
 * that tenant only: a state that rehearsed against the emulator and is then pointed at the
 * real tenant would otherwise believe everything is there already and send nothing. The
 * binding is recorded by the first sending command and compared by every later one.
 */

/** What identifies the tenant a state was synced to. */
export interface TenantIdentity {
  /** Host (and port) of feishu.base_url: another host is another Feishu (or an emulator). */
  readonly host: string;
  readonly appId: string;
  readonly employeeType: string;
  readonly namespace: string;
}

export interface TenantBinding extends TenantIdentity {
  readonly boundAt: number;
}

const ROW = 'feishu';

export function tenantOf(config: ResolvedConfig): TenantIdentity {
  return {
    host: new URL(config.feishu.base_url).host.toLowerCase(),
    appId: config.feishu.app_id,
    employeeType: config.feishu.employee_type,
    namespace: config.sync.namespace,
  };
}

/** One line naming a tenant; app ids and hosts are not secrets. */
export function describeTenant(t: TenantIdentity): string {
  return `app ${t.appId} at ${t.host} (employee_type ${t.employeeType}, namespace ${t.namespace})`;
}

/** The config keys that differ between the binding and the configuration. */
export function tenantDifferences(bound: TenantIdentity, current: TenantIdentity): string[] {
  const out: string[] = [];
  if (bound.host !== current.host) out.push('feishu.base_url');
  if (bound.appId !== current.appId) out.push('feishu.app_id');
  if (bound.employeeType !== current.employeeType) out.push('feishu.employee_type');
  if (bound.namespace !== current.namespace) out.push('sync.namespace');
  return out;
}

export async function getTenantBinding(db: Knex, t: StateTables): Promise<TenantBinding | null> {
  const row = (await db(t.tenant).where({ name: ROW }).first()) as Record<string, unknown> | undefined;
  if (!row) return null;
  return {
    host: String(row.base_host),
    appId: String(row.app_id),
    employeeType: String(row.employee_type),
    namespace: String(row.namespace),
    boundAt: toMillis(row.bound_at as number) ?? 0,
  };
}

/** The refusal: names both tenants, the keys that differ and the way out. */
export function mismatchMessage(bound: TenantBinding, current: TenantIdentity): string {
  const since = DateTime.fromMillis(bound.boundAt).toUTC().toFormat("yyyy-MM-dd HH:mm'Z'");
  return (
    `the state database belongs to Feishu ${describeTenant(bound)}, bound ${since}, but the configuration points at ${describeTenant(current)} ` +
    `(${tenantDifferences(bound, current).join(', ')} differ): what the sync table calls sent is not in the configured tenant, so nothing is sent. ` +
    'Put the configuration back, or re-bind the state deliberately with `attendance-sync rebind-tenant --yes` (README: Going live)'
  );
}

export class TenantMismatchError extends AppError {
  constructor(
    readonly bound: TenantBinding,
    readonly current: TenantIdentity,
  ) {
    super('TENANT_MISMATCH', mismatchMessage(bound, current), { exitCode: ExitCode.USAGE });
    this.name = 'TenantMismatchError';
  }
}

/**
 * Compare the configuration with the state's binding: throws TenantMismatchError when they
 * differ. Unbound and `bind`: the state is bound to the configured tenant now (a concurrent
 * binder wins the insert; its binding is then compared like any other).
 */
export async function ensureTenant(
  db: Knex,
  t: StateTables,
  current: TenantIdentity,
  o: { bind: boolean; now?: number },
): Promise<{ binding: TenantBinding | null; boundNow: boolean }> {
  let bound = await getTenantBinding(db, t);
  let boundNow = false;
  if (!bound && o.bind) {
    const now = o.now ?? Date.now();
    await db(t.tenant).insert(bindingRow(current, now)).onConflict('name').ignore();
    bound = await getTenantBinding(db, t);
    boundNow = bound?.boundAt === now;
  }
  if (bound && tenantDifferences(bound, current).length > 0) throw new TenantMismatchError(bound, current);
  return { binding: bound, boundNow };
}

function bindingRow(current: TenantIdentity, now: number): Record<string, unknown> {
  return { name: ROW, base_host: current.host, app_id: current.appId, employee_type: current.employeeType, namespace: current.namespace, bound_at: now };
}

export interface RebindResult {
  readonly previous: TenantBinding | null;
  /** Rows forgotten: operations, per-record versions, watermarks (0 with keepState). */
  readonly forgotten: { operations: number; records: number; watermarks: number };
}

/**
 * Bind the state to `current`. Without `keepState` the state of the previous tenant is
 * forgotten — sync table, per-record versions and watermarks — in the same transaction, so the
 * next cycle reads the source from the start and sends every approved record to the new
 * tenant, exactly as on a fresh install (with the same idempotency keys). With `keepState`
 * only the binding changes: for the same tenant reached another way (a new app of the same
 * company, a proxy in front of open.feishu.cn), which already holds what the state sent.
 */
export async function rebindTenant(db: Knex, t: StateTables, current: TenantIdentity, o: { keepState: boolean; now?: number }): Promise<RebindResult> {
  const now = o.now ?? Date.now();
  return db.transaction(async (trx) => {
    const previous = await getTenantBinding(trx, t);
    const forgotten = { operations: 0, records: 0, watermarks: 0 };
    if (!o.keepState) {
      forgotten.operations = Number(await trx(t.syncRecords).delete());
      if (await trx.schema.hasTable(t.statusCounts)) await trx(t.statusCounts).delete();
      forgotten.records = Number(await trx(t.records).delete());
      forgotten.watermarks = Number(await trx(t.watermarks).delete());
      // The calls counted against the monthly quota were the old tenant's.
      if (await trx.schema.hasTable(t.quota)) await trx(t.quota).delete();
    }
    await trx(t.tenant).where({ name: ROW }).delete();
    await trx(t.tenant).insert(bindingRow(current, now));
    return { previous, forgotten };
  });
}

/** Rows a rebind without keepState would forget. */
export async function stateSize(db: Knex, t: StateTables): Promise<{ operations: number; records: number; watermarks: number }> {
  const count = async (table: string) => Number(((await db(table).count({ n: '*' }).first()) as { n?: number | string } | undefined)?.n ?? 0);
  return { operations: await count(t.syncRecords), records: await count(t.records), watermarks: await count(t.watermarks) };
}
