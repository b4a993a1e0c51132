import type { Knex } from 'knex';
import type { StateMigration } from './types.js';
import type { StateTables } from '../src/state/tables.js';

/** ISO-8601 UTC text (2026-03-02T01:02:03.456Z) of an epoch-ms column, per dialect. */
function isoOf(knex: Knex, column: string): string {
  const client = String((knex.client as { config: { client: unknown } }).config.client);
  if (client === 'pg') return `to_char(to_timestamp(${column} / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
  // Arithmetic from the epoch: no dependence on the session's time_zone or on zone tables.
  if (client === 'mysql2' || client === 'mysql') {
    return `CONCAT(LEFT(DATE_FORMAT(TIMESTAMPADD(MICROSECOND, ${column} * 1000, '1970-01-01 00:00:00'), '%Y-%m-%dT%H:%i:%s.%f'), 23), 'Z')`;
  }
  return `strftime('%Y-%m-%dT%H:%M:%fZ', ${column} / 1000.0, 'unixepoch')`;
}

const TIMES = ['created_at', 'updated_at', 'next_attempt_at', 'lease_until', 'sent_at'] as const;

async function createView(knex: Knex, t: StateTables): Promise<void> {
  const columns = TIMES.map((c) => `${isoOf(knex, `s.${c}`)} AS ${c}_utc`).join(', ');
  await knex.raw(`DROP VIEW IF EXISTS ??`, [t.syncRecordsView]);
  await knex.raw(`CREATE VIEW ?? AS SELECT s.*, ${columns} FROM ?? s`, [t.syncRecordsView, t.syncRecords]);
}

/**
 * Per kind: the hash of the mapping that judged its rows (a changed mapping re-reads the
 * invalid ones) and where `sync.start_from` put the first cycle. Also a view of the sync
 * table with readable UTC timestamps beside the epoch-ms columns, and an index to find a
 * kind's invalid records.
 *
 * Invalid rows that an earlier version left behind after their record was fixed (or judged
 * again with other reasons) become `superseded`: only current problems stay `invalid`.
 */
export const migration: StateMigration = {
  name: '0006_kind_state',
  async up(knex, t) {
    if (!(await knex.schema.hasTable(t.kindState))) {
      await knex.schema.createTable(t.kindState, (tb) => {
        tb.string('kind', 16).primary();
        tb.string('mapping_hash', 64).nullable();
        tb.text('start_from').nullable();
        tb.bigInteger('started_at').nullable();
        tb.bigInteger('updated_at').notNullable();
      });
    }
    try {
      await knex.schema.alterTable(t.records, (tb) => tb.index(['kind', 'state'], `${t.records}_state_idx`));
    } catch {
      /* already there: a half-applied run on MySQL / MariaDB, whose DDL commits statement by statement */
    }
    await createView(knex, t);
    const stale = (await knex(`${t.syncRecords} as s`)
      .select('s.id')
      .where('s.status', 'invalid')
      .where((w) =>
        w
          .whereNotExists((q) => q.select(knex.raw('1')).from(`${t.records} as r`).whereRaw('r.kind = s.kind').andWhereRaw('r.source_key = s.source_key').andWhere('r.state', 'invalid'))
          .orWhereExists((q) =>
            q.select(knex.raw('1')).from(`${t.syncRecords} as n`).whereRaw('n.kind = s.kind').andWhereRaw('n.source_key = s.source_key').andWhereRaw('n.id > s.id').andWhere('n.status', 'invalid'),
          ),
      )) as Array<{ id: number | string }>;
    const ids = stale.map((r) => Number(r.id));
    for (let i = 0; i < ids.length; i += 500) {
      await knex(t.syncRecords).whereIn('id', ids.slice(i, i + 500)).update({ status: 'superseded' });
    }
  },
  async down(knex, t) {
    await knex.raw(`DROP VIEW IF EXISTS ??`, [t.syncRecordsView]);
    try {
      await knex.schema.alterTable(t.records, (tb) => tb.dropIndex(['kind', 'state'], `${t.records}_state_idx`));
    } catch {
      /* not there */
    }
    await knex.schema.dropTableIfExists(t.kindState);
  },
};
