import type { ResolvedConfig } from '../config/load.js';
import type { AnyKindConfig } from '../config/schema.js';
import type { Databases } from '../pipeline/wiring.js';
import { TokenProvider } from '../feishu/token.js';
import type { Kind } from '../kinds.js';
import type { Logger } from '../log/logger.js';
import type { SourceRow } from '../mapping/map.js';
import { describeTypeTable, withTypeTable } from '../mapping/typeTable.js';
import { ContactClient } from './contact.js';
import { resolveRows, resolveSpec } from './users.js';

/**
 * What `preview` maps with, writing nothing: the type table of a types_query (derived
 * uniq_ids shown, not stored) and addresses resolved through Feishu (the cache read, not
 * written). `addresses` gives, per source key, the address a user id was resolved from.
 */
export async function previewMapping(
  config: ResolvedConfig,
  dbs: Databases,
  kind: Kind,
  cfg: AnyKindConfig,
  rows: readonly SourceRow[],
  logger?: Logger,
): Promise<{ cfg: AnyKindConfig; rows: SourceRow[]; typeTable: string[] | null; typeProblems: string[]; addresses: Map<string, string> }> {
  const { cfg: merged, table } = await withTypeTable({ source: dbs.source, state: dbs.state, t: dbs.tables, persist: false }, kind, cfg);
  const spec = resolveSpec(merged);
  const addresses = new Map<string, string>();
  let ready = [...rows];
  if (spec && rows.length > 0) {
    const tokens = new TokenProvider({ appId: config.feishu.app_id, appSecret: config.feishu.app_secret, baseUrl: config.feishu.base_url, timeoutMs: config.feishu.timeout_ms });
    const contact = new ContactClient({ baseUrl: config.feishu.base_url, tokens, timeoutMs: config.feishu.timeout_ms, logger });
    for (const row of rows) {
      const key = row[merged.key];
      const column = Object.keys(row).find((k) => k.toLowerCase() === spec.column.toLowerCase());
      if (key !== null && key !== undefined && column) addresses.set(String(key).trim(), String(row[column] ?? '').trim());
    }
    ready = await resolveRows({ config, state: dbs.state, t: dbs.tables, contact, logger, persist: false }, kind, merged, rows);
  }
  return { cfg: merged, rows: ready, typeTable: table ? describeTypeTable(table) : null, typeProblems: table?.problems ?? [], addresses };
}
