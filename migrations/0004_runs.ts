import type { StateMigration } from './types.js';

/** One row per cycle, backfill or retry: when, how it ended, and its counts (JSON). */
export const migration: StateMigration = {
  name: '0004_runs',
  async up(knex, t) {
    if (await knex.schema.hasTable(t.runs)) return;
    await knex.schema.createTable(t.runs, (tb) => {
      tb.bigIncrements('id').primary();
      tb.string('type', 16).notNullable();
      tb.bigInteger('started_at').notNullable();
      tb.bigInteger('finished_at').nullable();
      tb.string('outcome', 16).notNullable();
      tb.text('counts').nullable();
      tb.text('error').nullable();
      tb.string('host', 128).nullable();
      tb.integer('pid').nullable();
      tb.index(['started_at'], `${t.runs}_started_idx`);
    });
  },
  async down(knex, t) {
    await knex.schema.dropTableIfExists(t.runs);
  },
};
