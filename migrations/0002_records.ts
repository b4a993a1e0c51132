import type { StateMigration } from './types.js';

/**
 * Current state per source record: the version Feishu holds (or is being sent), and what the
 * source row last looked like (active, inactive, invalid). Planning diffs against it.
 */
export const migration: StateMigration = {
  name: '0002_records',
  async up(knex, t) {
    if (await knex.schema.hasTable(t.records)) return;
    await knex.schema.createTable(t.records, (tb) => {
      tb.string('kind', 16).notNullable();
      tb.string('source_key', 191).notNullable();
      tb.string('version', 64).nullable();
      tb.string('state', 16).notNullable();
      tb.string('user_id', 128).nullable();
      tb.string('effective_date', 10).nullable();
      tb.text('reasons').nullable();
      tb.integer('generation').notNullable().defaultTo(0);
      tb.bigInteger('first_seen_at').notNullable();
      tb.bigInteger('updated_at').notNullable();
      tb.primary(['kind', 'source_key']);
      tb.index(['kind', 'effective_date'], `${t.records}_date_idx`);
    });
  },
  async down(knex, t) {
    await knex.schema.dropTableIfExists(t.records);
  },
};
