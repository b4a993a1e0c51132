import type { StateMigration } from './types.js';

/**
 * The e-mail / mobile → Feishu user id cache (fields.user_id with `resolve`), and the
 * uniq_id each leave or out type code of a `types_query` was given, so that a derived
 * uniq_id never changes for a code once it has been used.
 */
export const migration: StateMigration = {
  name: '0014_resolution',
  async up(knex, t) {
    if (!(await knex.schema.hasTable(t.userResolution))) {
      await knex.schema.createTable(t.userResolution, (tb) => {
        tb.string('address_kind', 8).notNullable();
        tb.string('address', 191).notNullable();
        tb.string('id_type', 16).notNullable();
        tb.string('user_id', 128).nullable();
        tb.boolean('resigned').notNullable().defaultTo(false);
        tb.bigInteger('resolved_at').notNullable();
        tb.primary(['address_kind', 'address', 'id_type']);
        tb.index(['user_id'], `${t.prefix}user_resolution_user_idx`);
      });
    }
    if (!(await knex.schema.hasTable(t.typeIds))) {
      await knex.schema.createTable(t.typeIds, (tb) => {
        tb.string('kind', 16).notNullable();
        tb.string('code', 191).notNullable();
        tb.string('uniq_id', 13).notNullable();
        tb.bigInteger('created_at').notNullable();
        tb.primary(['kind', 'code']);
      });
    }
  },
  async down(knex, t) {
    await knex.schema.dropTableIfExists(t.typeIds);
    await knex.schema.dropTableIfExists(t.userResolution);
  },
};
