import path from 'node:path';
import { DateTime } from 'luxon';
import { loadConfig, type ResolvedConfig } from '../../config/load.js';
import { type ConfigFile } from '../../config/configDir.js';
import { parseDatabaseUrl } from '../../db/url.js';
import { describeError } from '../../errors.js';
import { redact } from '../../log/redact.js';
import { lastRuns, lockHolder, statusCounts } from '../../state/overview.js';
import { openDatabases } from '../../pipeline/wiring.js';
import { columns } from '../../state/status.js';
import { dialectFor } from '../../db/dialect.js';

/** One configuration of the directory, summarised. */
export interface ConfigSummary {
  readonly name: string;
  readonly file: string;
  /** The state database (password masked) and the table prefix. */
  readonly state: string | null;
  readonly tenant: string | null;
  readonly lock: { owner: string; heartbeatAt: number; leaseUntil: number } | null;
  /** The last cycle that finished. */
  readonly lastCycle: { at: number; outcome: string } | null;
  readonly operations: { pending: number; failed: number; dead: number; invalid: number; sent: number };
  /** What is wrong: an unreadable configuration, an unreachable database, state shared with another file. */
  readonly problems: string[];
}

/** A multi-line message (a configuration's problems) as one line of the summary. */
const oneLine = (text: string) => text.replace(/:?\s*\n\s*-?\s*/g, '; ').replace(/^; /, '');

/** Where a configuration's state lives: two files with one identity share tables and lock. */
function stateIdentity(config: ResolvedConfig): string {
  const t = parseDatabaseUrl(config.state.url, 'state.url');
  const where = dialectFor(t.dialect).server ? `${t.dialect}://${t.host ?? ''}:${t.port ?? ''}/${t.database ?? ''}` : `${t.dialect}:${path.resolve(t.filename ?? '')}`;
  return `${where}#${config.state.table_prefix}`;
}

async function summarise(f: ConfigFile): Promise<{ summary: ConfigSummary; config: ResolvedConfig | null }> {
  const empty = { pending: 0, failed: 0, dead: 0, invalid: 0, sent: 0 };
  let config: ResolvedConfig;
  try {
    config = loadConfig({ configPath: f.file });
  } catch (err) {
    return { summary: { name: f.name, file: f.file, state: null, tenant: null, lock: null, lastCycle: null, operations: empty, problems: [`configuration: ${oneLine(redact(describeError(err)))}`] }, config: null };
  }
  const state = `${parseDatabaseUrl(config.state.url, 'state.url').display} (prefix ${config.state.table_prefix})`;
  const tenant = `${config.feishu.app_id} @ ${new URL(config.feishu.base_url).host}`;
  const problems: string[] = [];
  let lock: ConfigSummary['lock'] = null;
  let lastCycle: ConfigSummary['lastCycle'] = null;
  const operations = { ...empty };
  let dbs: ReturnType<typeof openDatabases> | null = null;
  try {
    dbs = openDatabases(config, { poolMax: 1 });
    if (!(await dbs.state.schema.hasTable(dbs.tables.syncRecords))) problems.push(`state tables missing: run \`attendance-sync --config ${f.file} migrate\``);
    else {
      const holder = await lockHolder(dbs.state, dbs.tables);
      lock = holder && holder.leaseUntil > Date.now() - 60_000 ? { owner: holder.owner, heartbeatAt: holder.heartbeatAt, leaseUntil: holder.leaseUntil } : null;
      // The last cycle that finished (one may be running right now: it says nothing yet).
      const cycles = (await lastRuns(dbs.state, dbs.tables, 20)).filter((r) => r.type === 'cycle');
      const done = cycles.find((r) => r.outcome !== 'running');
      lastCycle = done ? { at: done.startedAt, outcome: done.outcome } : null;
      for (const c of await statusCounts(dbs.state, dbs.tables)) {
        if (c.status in operations) operations[c.status as keyof typeof operations] += c.count;
      }
    }
  } catch (err) {
    problems.push(`state database: ${oneLine(redact(describeError(err)))}`);
  } finally {
    await dbs?.close().catch(() => undefined);
  }
  return { summary: { name: f.name, file: f.file, state, tenant, lock, lastCycle, operations, problems }, config };
}

/**
 * Every configuration of a directory side by side: its state, tenant, lock holder, last
 * cycle and operations. Files that share one state (database and table prefix) share its
 * tables and its leader lock: one of the two syncs would wait forever and their watermarks
 * would mix; files that send to one tenant under one sync.namespace could collide in
 * idempotent ids; two metrics servers cannot share a port. All are reported as problems.
 */
export async function statusAll(files: readonly ConfigFile[]): Promise<ConfigSummary[]> {
  const loaded = [];
  for (const f of files) loaded.push(await summarise(f));
  const byState = new Map<string, string[]>();
  const byTenant = new Map<string, string[]>();
  const byPort = new Map<string, string[]>();
  for (const { summary, config } of loaded) {
    if (!config) continue;
    try {
      const id = stateIdentity(config);
      byState.set(id, [...(byState.get(id) ?? []), summary.name]);
    } catch {
      /* reported by summarise */
    }
    const tenant = `${config.feishu.base_url}|${config.feishu.app_id}|${config.sync.namespace}`;
    byTenant.set(tenant, [...(byTenant.get(tenant) ?? []), summary.name]);
    if (config.metrics.enabled) {
      const port = `${config.metrics.host}:${config.metrics.port}`;
      byPort.set(port, [...(byPort.get(port) ?? []), summary.name]);
    }
  }
  for (const { summary, config } of loaded) {
    if (!config) continue;
    const sharing = (byState.get(stateIdentity(config)) ?? []).filter((n) => n !== summary.name);
    if (sharing.length > 0) summary.problems.push(`shares its state tables and leader lock with ${sharing.join(', ')}: give each file its own state database or state.table_prefix`);
    const same = (byTenant.get(`${config.feishu.base_url}|${config.feishu.app_id}|${config.sync.namespace}`) ?? []).filter((n) => n !== summary.name);
    const port = config.metrics.enabled ? (byPort.get(`${config.metrics.host}:${config.metrics.port}`) ?? []).filter((n) => n !== summary.name) : [];
    if (port.length > 0) summary.problems.push(`listens for metrics on ${config.metrics.host}:${config.metrics.port} like ${port.join(', ')}: give each file its own metrics.port`);
    if (same.length > 0) summary.problems.push(`sends to the same Feishu app as ${same.join(', ')} under the same sync.namespace "${config.sync.namespace}": give each file its own namespace`);
  }
  return loaded.map((l) => l.summary);
}

const when = (ms: number | null | undefined) => (ms ? DateTime.fromMillis(ms).toUTC().toFormat("yyyy-MM-dd HH:mm:ss'Z'") : '—');

export function renderStatusAll(dir: string, all: readonly ConfigSummary[]): string {
  const out = [`Configurations in ${dir}`];
  if (all.length === 0) {
    out.push('  (none: put one *.yaml per sync there; the examples are skipped)');
    return out.join('\n') + '\n';
  }
  out.push(
    ...columns(
      ['config', 'state', 'tenant', 'leader', 'last cycle', 'pending', 'failed', 'dead', 'invalid', 'sent'],
      all.map((s) => [
        s.name,
        s.state ?? '—',
        s.tenant ?? '—',
        s.lock ? s.lock.owner : 'none',
        s.lastCycle ? `${when(s.lastCycle.at)} ${s.lastCycle.outcome}` : '—',
        String(s.operations.pending),
        String(s.operations.failed),
        String(s.operations.dead),
        String(s.operations.invalid),
        String(s.operations.sent),
      ]),
      [24, 48, 32, 32, 34, 8, 8, 8, 8],
    ),
  );
  const troubled = all.filter((s) => s.problems.length > 0);
  if (troubled.length > 0) {
    out.push('', 'Problems');
    for (const s of troubled) for (const p of s.problems) out.push(`  ${s.name}: ${p}`);
  }
  return out.join('\n') + '\n';
}
