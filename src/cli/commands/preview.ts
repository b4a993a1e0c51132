import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { isKind, KINDS } from '../../kinds.js';
import { enabledKinds, mapRows } from '../../pipeline/deps.js';
import { nextReadStart } from '../../pipeline/read.js';
import { openDatabases } from '../../pipeline/wiring.js';
import { readPage } from '../../source/extract.js';
import { readByEffectiveDate } from '../../source/window.js';
import { effectiveDateColumn } from '../../source/relation.js';
import { countFrom } from '../../source/start.js';
import type { Cursor } from '../../pipeline/read.js';
import type { SourceRow } from '../../mapping/map.js';
import { loadContext } from '../context.js';
import { previewMapping } from '../../resolve/preview.js';

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
      const kinds = enabledKinds(config);
      if (opts.kind && !kinds.some(([k]) => k === opts.kind)) {
        throw new ConfigError([`--kind: ${opts.kind} is not configured and enabled in ${config.configPath} (configured: ${kinds.map(([k]) => k).join(', ') || 'none'})`], 'invalid arguments');
      }
      const dbs = openDatabases(config, { poolMax: 1 });
      const out: Record<string, unknown> = {};
      // Why each kind shows what it shows (stderr: stdout stays JSON).
      const notes: string[] = [];
      try {
        for (const [kind, cfg] of kinds) {
          if (opts.kind && opts.kind !== kind) continue;
          let rows: SourceRow[] = [];
          let where: string;
          if (opts.from) {
            where = `with an effective date (${effectiveDateColumn(cfg)}) from ${opts.from}`;
            for await (const page of readByEffectiveDate(dbs.source, cfg, { from: opts.from, pageSize: limit })) {
              rows = page;
              break;
            }
          } else {
            const start = await nextReadStart(dbs, config, kind, cfg);
            const after: Cursor | null = start.from === 'beginning' ? null : start.position;
            if (start.from === 'watermark') where = start.position.key === null ? `changed at or after ${start.position.value} (sync.start_from)` : `changed after the watermark (${start.position.value ?? `key ${start.position.key}`})`;
            else if (start.from === 'start_from') {
              where = after?.value ? `changed at or after ${after.value} (sync.start_from: ${start.startFrom})` : after ? `after key ${after.key} (sync.start_from)` : 'in the source';
            } else where = 'in the source (no watermark yet: the first cycle reads them all)';
            rows = (await readPage(dbs.source, cfg, after, { pageSize: limit })).rows;
            if (rows.length > 0 && rows.length >= limit) where += `, the first ${limit} of ${await countFrom(dbs.source, cfg, after)}`;
          }
          const prepared = await previewMapping(config, dbs, kind, cfg, rows);
          const mapped = mapRows(config, kind, prepared.cfg, prepared.rows);
          if (prepared.typeTable) notes.push(`${kind}: type table (types and types_query): ${prepared.typeTable.length === 0 ? 'empty' : `\n  ${prepared.typeTable.join('\n  ')}`}`);
          for (const problem of prepared.typeProblems) notes.push(`${kind}: ${problem}`);
          out[kind] = mapped.map((m) =>
            m.outcome === 'valid'
              ? {
                  key: m.sourceKey,
                  outcome: 'valid',
                  ...(prepared.addresses.has(m.sourceKey) ? { resolved: { from: prepared.addresses.get(m.sourceKey), user_id: m.userId } } : {}),
                  payload: { user_approval: m.request },
                }
              : m.outcome === 'inactive'
                ? { key: m.sourceKey, outcome: 'inactive', reason: m.reason }
                : { key: m.sourceKey, outcome: 'invalid', reasons: m.reasons },
          );
          const n = (o: string) => mapped.filter((m) => m.outcome === o).length;
          if (rows.length === 0) notes.push(`${kind}: nothing to preview: no rows ${where}`);
          else {
            const why = n('valid') === 0 ? ` (nothing would be sent: ${n('invalid') > 0 ? `${n('invalid')} invalid, see their reasons` : 'every row is cancelled, rejected or deleted'})` : '';
            notes.push(`${kind}: ${rows.length} row(s) ${where}: ${n('valid')} valid, ${n('invalid')} invalid, ${n('inactive')} inactive${why}`);
          }
        }
      } finally {
        await dbs.close();
      }
      process.stdout.write(JSON.stringify(out, null, 2) + '\n');
      for (const note of notes) process.stderr.write(`preview ${note}\n`);
    });
}
