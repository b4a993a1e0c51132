import type { StateMigration } from './types.js';

/** The leader lease (SQLite's lock, and the holder shown by `status` on every dialect). */
export const migration: StateMigration = {
  name: '0005_lock',
  async up(knex, t) {
    if (await knex.schema.hasTable(t.lock)) return;
    await knex.schema.createTable(t.lock, (tb) => {
      tb.string('name', 64).primary();
      tb.string('owner', 128).notNullable();
      tb.bigInteger('lease_until').notNullable();
      tb.bigInteger('acquired_at').notNullable();
      tb.bigInteger('heartbeat_at').notNullable();
    });
  },
  async down(knex, t) {
    await knex.schema.dropTableIfExists(t.lock);
  },
};
