import type { StateMigration } from './types.js';

/**
 * Operations per kind and status, kept as the sync table is written, so `status` and the
 * console's overview read a few rows instead of counting millions. Writers append rows of
 * (kind, status, delta); the leader folds them into one row per kind and status. The table
 * starts from a count of the sync table as it is.
 */
export const migration: StateMigration = {
  name: '0018_status_counts',
  async up(knex, t) {
    if (await knex.schema.hasTable(t.statusCounts)) return;
    await knex.schema.createTable(t.statusCounts, (tb) => {
      tb.bigIncrements('id');
      tb.string('kind', 16).notNullable();
      tb.string('status', 16).notNullable();
      tb.bigInteger('delta').notNullable();
    });
    const rows = (await knex(t.syncRecords).select('kind', 'status').count({ n: '*' }).groupBy('kind', 'status')) as Array<{ kind: string; status: string; n: number | string }>;
    if (rows.length > 0) await knex(t.statusCounts).insert(rows.map((r) => ({ kind: r.kind, status: r.status, delta: Number(r.n) })));
  },
  async down(knex, t) {
    await knex.schema.dropTableIfExists(t.statusCounts);
  },
};
