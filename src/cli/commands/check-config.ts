import type { Command } from 'commander';
import type { Knex } from 'knex';
import { ExitCode, describeError } from '../../errors.js';
import { redact } from '../../log/redact.js';
import { parseDatabaseUrl } from '../../db/url.js';
import { DatabaseConnectError } from '../../db/connect.js';
import { KINDS } from '../../kinds.js';
import type { AnyKindConfig } from '../../config/schema.js';
import { CheckReport } from '../../check/report.js';
import { reportDetection } from '../../check/detection.js';
import { isLeadingIndexColumn, requiredColumns, sourceColumns } from '../../check/introspect.js';
import { cursorColumn as cursorColumnOf, sourceRelation } from '../../source/relation.js';
import { TokenProvider } from '../../feishu/token.js';
import { describeTenant, getTenantBinding, mismatchMessage, tenantDifferences, tenantOf } from '../../pipeline/tenantBinding.js';
import { openDatabases, type Databases } from '../../pipeline/wiring.js';
import { loadContext } from '../context.js';
import type { ResolvedConfig } from '../../config/load.js';
import type { Kind } from '../../kinds.js';
import { countFrom } from '../../source/start.js';
import { nextReadStart } from '../../pipeline/read.js';
import { AppError } from '../../errors.js';
import { setExitCode } from '../exit.js';
import { checkEmployeeType, checkKindMapping } from '../../check/mapping.js';

async function reachable(report: CheckReport, subject: string, db: Knex, display: string): Promise<boolean> {
  try {
    await db.raw('select 1');
    report.ok(subject, `connected (${display})`);
    return true;
  } catch (err) {
    report.error(subject, `cannot connect to ${display}: ${redact(err instanceof DatabaseConnectError ? err.reason : describeError(err))}`);
    return false;
  }
}

async function checkKind(report: CheckReport, db: Knex, kind: string, cfg: AnyKindConfig): Promise<void> {
  const at = `kinds.${kind}`;
  const where = cfg.source.table ? `table ${cfg.source.table}` : 'the source query';
  let columns: string[];
  try {
    columns = await sourceColumns(db, cfg);
  } catch (err) {
    report.error(`${at}.source`, `${where} cannot be read: ${redact(describeError(err))}`);
    return;
  }
  const lower = new Map(columns.map((c) => [c.toLowerCase(), c]));
  let missing = 0;
  for (const [column, paths] of requiredColumns(at, cfg)) {
    if (columns.includes(column) || lower.has(column.toLowerCase())) continue;
    missing++;
    for (const p of paths) report.error(p, `column "${column}" not found in ${where} (it has: ${columns.join(', ')})`);
  }
  if (missing === 0) report.ok(`${at}.source`, `${where}: all ${requiredColumns(at, cfg).size} mapped columns exist`);

  const cursorColumn = cursorColumnOf(cfg);
  const cursorPath = cfg.cursor.mode === 'updated_at' ? `${at}.cursor.column` : `${at}.key`;
  if (!cursorColumn || !columns.includes(cursorColumn)) return;
  try {
    const nulls = Number(((await sourceRelation(db, cfg).whereNull(cursorColumn).count({ n: '*' }).first()) as { n?: number | string } | undefined)?.n ?? 0);
    if (nulls > 0) {
      report.warn(cursorPath, `${nulls} row(s) have no "${cursorColumn}" (NULL): the watermark cannot see them, only the rescan of effective dates syncs them`);
    }
  } catch (err) {
    report.warn(cursorPath, `cannot count rows without "${cursorColumn}": ${redact(describeError(err))}`);
  }
  if (!cfg.source.table) {
    report.warn(cursorPath, `cannot check the index of a query source: make sure "${cursorColumn}" of the underlying table leads an index`);
    return;
  }
  try {
    if (await isLeadingIndexColumn(db, cfg.source.table, cursorColumn)) report.ok(cursorPath, `"${cursorColumn}" is indexed`);
    else
      report.warn(
        cursorPath,
        `"${cursorColumn}" leads no index of ${cfg.source.table}: every poll scans the table (CREATE INDEX … ON ${cfg.source.table} (${cursorColumn}, ${cfg.key}))`,
      );
  } catch (err) {
    report.warn(cursorPath, `cannot check indexes: ${redact(describeError(err))}`);
  }
}

/** localhost, 127.0.0.0/8 and ::1: plain HTTP there never leaves the machine (the emulator). */
function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127(?:\.\d{1,3}){3}$/.test(h);
}

/** How many rows the next cycle of a kind reads: after its watermark, from sync.start_from, or all of them. */
async function firstCycle(report: CheckReport, dbs: Databases, config: ResolvedConfig, hasState: boolean, kind: Kind, cfg: AnyKindConfig): Promise<void> {
  const at = `kinds.${kind}`;
  try {
    const start = await nextReadStart(dbs, config, kind, cfg, { state: hasState });
    if (start.from === 'watermark') {
      const n = await countFrom(dbs.source, cfg, start.position);
      report.ok(at, `the next cycle reads ${n} row(s) changed after the watermark (${start.position.value ?? `key ${start.position.key}`})`);
      return;
    }
    if (start.from === 'start_from') {
      const position = start.position;
      const n = await countFrom(dbs.source, cfg, position);
      const from = position?.value ? `changed at or after ${position.value}` : position ? `after key ${position.key} (an id cursor starts after the highest key)` : 'of the (empty) source';
      report.ok(at, `the first cycle reads ${n} row(s) ${from} (sync.start_from: ${start.startFrom}); older rows go through \`backfill\``);
      return;
    }
    const n = await countFrom(dbs.source, cfg, null);
    if (n > 0 && !start.started) report.warn(at, `no watermark yet and no sync.start_from: the first cycle sends all ${n} row(s) of the source (set sync.start_from: now, and send history with \`backfill\`)`);
    else report.ok(at, `the next cycle reads ${n} row(s)`);
  } catch (err) {
    report.warn(at, `cannot count the rows of the first cycle: ${redact(describeError(err))}`);
  }
}

export function register(program: Command): void {
  program
    .command('check-config')
    .description('validate the configuration, connect to both databases and check every mapped table, column and index')
    .option('--feishu', 'also fetch a tenant_access_token to check the Feishu credentials')
    .action(async (opts: { feishu?: boolean }, cmd: Command) => {
      const { config } = loadContext(cmd);
      const report = new CheckReport();
      report.ok('configuration', `${config.configPath} is valid`);
      checkEmployeeType(report, config);
      const feishuUrl = new URL(config.feishu.base_url);
      if (feishuUrl.protocol === 'http:' && !isLoopback(feishuUrl.hostname)) {
        report.warn('feishu.base_url', `plain HTTP to ${feishuUrl.host}: the app secret, tenant tokens and approvals travel unencrypted (use https://)`);
      }
      let dbs: Databases;
      try {
        dbs = openDatabases(config, { poolMax: 1 });
      } catch (err) {
        // A SQLite source that does not exist: nothing to connect to, and nothing is created.
        if (!(err instanceof AppError)) throw err;
        report.error('source database', redact(err.message));
        process.stdout.write(report.render());
        setExitCode(cmd, ExitCode.USAGE);
        return;
      }
      try {
        const sourceOk = await reachable(report, 'source database', dbs.source, parseDatabaseUrl(config.source.url).display);
        let stateOk = sourceOk;
        if (dbs.state !== dbs.source) {
          stateOk = await reachable(report, 'state database', dbs.state, parseDatabaseUrl(config.state.url).display);
        }
        let hasState = false;
        if (stateOk) {
          const table = `${config.state.table_prefix}sync_records`;
          hasState = await dbs.state.schema.hasTable(table);
          if (hasState) report.ok('state tables', `present (prefix ${config.state.table_prefix})`);
          else report.warn('state tables', `missing: run \`npx attendance-sync migrate\``);
          if (await dbs.state.schema.hasTable(dbs.tables.tenant)) {
            const current = tenantOf(config);
            const bound = await getTenantBinding(dbs.state, dbs.tables);
            const differ = bound ? tenantDifferences(bound, current) : [];
            if (!bound) report.ok('feishu tenant', `the state is not bound yet: the first send binds it to ${describeTenant(current)}`);
            else if (differ.length === 0) report.ok('feishu tenant', `the state belongs to ${describeTenant(current)}`);
            else report.error(differ.join(', '), mismatchMessage(bound, current));
          }
        }
        if (sourceOk) {
          for (const kind of KINDS) {
            const cfg = config.kinds[kind] as AnyKindConfig | undefined;
            if (!cfg) continue;
            if (!cfg.enabled) {
              report.ok(`kinds.${kind}`, 'disabled');
              continue;
            }
            await checkKind(report, dbs.source, kind, cfg);
            await checkKindMapping(report, dbs, config, kind, cfg);
            reportDetection(report, config, kind, cfg);
            await firstCycle(report, dbs, config, hasState, kind, cfg);
          }
        }
        if (opts.feishu) {
          try {
            const tokens = new TokenProvider({ appId: config.feishu.app_id, appSecret: config.feishu.app_secret, baseUrl: config.feishu.base_url, timeoutMs: config.feishu.timeout_ms });
            await tokens.getToken();
            report.ok('feishu', `credentials accepted by ${config.feishu.base_url}`);
          } catch (err) {
            report.error('feishu', redact(describeError(err)));
          }
        }
      } finally {
        await dbs.close();
      }
      process.stdout.write(report.render());
      setExitCode(cmd, report.errors > 0 ? ExitCode.USAGE : ExitCode.OK);
    });
}
