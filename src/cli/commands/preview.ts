import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { isKind, KINDS } from '../../kinds.js';
import { enabledKinds, mapRows } from '../../pipeline/cycle.js';
import { readByEffectiveDate, readPage, type Cursor } from '../../source/extract.js';
import { getWatermark } from '../../state/watermarks.js';
import type { SourceRow } from '../../mapping/map.js';
import { loadContext, openDatabases } from '../context.js';

export function register(program: Command): void {
  program
    .command('preview')
    .description('read and map the next source rows and print the Feishu payloads and invalid rows; writes nothing, sends nothing')
    .option('--kind <kind>', `only this kind (${KINDS.join(', ')})`)
    .option('--limit <n>', 'rows per kind', '10')
    .option('--from <date>', 'rows with an effective date from this day (YYYY-MM-DD) instead of after the watermark')
    .action(async (opts: { kind?: string; limit: string; from?: string }, cmd: Command) => {
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new ConfigError(['--limit: a whole number ≥ 1'], 'invalid arguments');
      if (opts.kind !== undefined && !isKind(opts.kind)) throw new ConfigError([`--kind: must be one of ${KINDS.join(', ')}`], 'invalid arguments');
      if (opts.from !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(opts.from)) throw new ConfigError(['--from: a date as YYYY-MM-DD'], 'invalid arguments');
      const { config } = loadContext(cmd);
      const dbs = openDatabases(config, { poolMax: 1 });
      const out: Record<string, unknown> = {};
      try {
        const hasState = await dbs.state.schema.hasTable(dbs.tables.watermarks);
        for (const [kind, cfg] of enabledKinds(config)) {
          if (opts.kind && opts.kind !== kind) continue;
          let rows: SourceRow[] = [];
          if (opts.from) {
            for await (const page of readByEffectiveDate(dbs.source, cfg, { from: opts.from, to: '9999-12-31', pageSize: limit })) {
              rows = page;
              break;
            }
          } else {
            const wm = hasState ? await getWatermark(dbs.state, dbs.tables, kind) : null;
            const after: Cursor | null = wm ? { value: wm.cursorValue, key: wm.cursorKey } : null;
            rows = (await readPage(dbs.source, cfg, after, { pageSize: limit })).rows;
          }
          const mapped = mapRows({ config } as Parameters<typeof mapRows>[0], kind, cfg, rows);
          out[kind] = mapped.map((m) =>
            m.outcome === 'valid'
              ? { key: m.sourceKey, outcome: 'valid', payload: { user_approval: m.request } }
              : m.outcome === 'inactive'
                ? { key: m.sourceKey, outcome: 'inactive', reason: m.reason }
                : { key: m.sourceKey, outcome: 'invalid', reasons: m.reasons },
          );
        }
      } finally {
        await dbs.close();
      }
      process.stdout.write(JSON.stringify(out, null, 2) + '\n');
    });
}
