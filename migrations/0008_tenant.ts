import type { StateMigration } from './types.js';

/**
 * The Feishu tenant the state belongs to: recorded at the first send, compared at every start.
 * What the sync table calls sent exists in that tenant only.
 */
export const migration: StateMigration = {
  name: '0008_tenant',
  async up(knex, t) {
    if (await knex.schema.hasTable(t.tenant)) return;
    await knex.schema.createTable(t.tenant, (tb) => {
      tb.string('name', 16).primary();
      tb.string('base_host', 255).notNullable();
      tb.string('app_id', 128).notNullable();
      tb.string('employee_type', 16).notNullable();
      tb.string('namespace', 64).notNullable();
      tb.bigInteger('bound_at').notNullable();
    });
  },
  async down(knex, t) {
    await knex.schema.dropTableIfExists(t.tenant);
  },
};
