import type { StateMigration } from './types.js';

/**
 * Successful Feishu calls per calendar month (yyyy-MM in feishu.time_zone): what the Basic
 * plan's monthly API quota counts, as far as this worker's own calls go.
 */
export const migration: StateMigration = {
  name: '0012_quota',
  async up(knex, t) {
    if (await knex.schema.hasTable(t.quota)) return;
    await knex.schema.createTable(t.quota, (tb) => {
      tb.string('month', 7).primary();
      tb.bigInteger('calls').notNullable().defaultTo(0);
      tb.bigInteger('updated_at').notNullable();
    });
  },
  async down(knex, t) {
    await knex.schema.dropTableIfExists(t.quota);
  },
};
