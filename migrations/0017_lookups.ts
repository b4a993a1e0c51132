import type { StateMigration } from './types.js';

/**
 * The latest Feishu lookup of each item the worker searched for: by idempotent_id (a create
 * whose outcome was ambiguous or "already exists") or by approval_id (a revoke that failed),
 * with what it found. The console's record page shows it.
 */
export const migration: StateMigration = {
  name: '0017_lookups',
  async up(knex, t) {
    if (await knex.schema.hasTable(t.lookups)) return;
    await knex.schema.createTable(t.lookups, (tb) => {
      // The idempotent_id searched for, or `approval:` + the approval_id.
      tb.string('subject', 191).primary();
      tb.string('kind', 16).notNullable();
      tb.string('user_id', 128).notNullable();
      tb.string('statuses', 32).notNullable();
      tb.string('found_approval_id', 64).nullable();
      tb.integer('found_status').nullable();
      tb.bigInteger('looked_at').notNullable();
    });
  },
  async down(knex, t) {
    await knex.schema.dropTableIfExists(t.lookups);
  },
};
