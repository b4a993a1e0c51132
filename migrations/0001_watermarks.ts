import type { StateMigration } from './types.js';

/** Per kind: the keyset cursor (the source DB's own string values) and the last rescan. */
export const migration: StateMigration = {
  name: '0001_watermarks',
  async up(knex, t) {
    if (await knex.schema.hasTable(t.watermarks)) return;
    await knex.schema.createTable(t.watermarks, (tb) => {
      tb.string('kind', 16).primary();
      // Text: a watermark must hold whatever the source's cursor and key columns hold, or the
      // page that ends on a long value could never commit and the kind would stall.
      tb.text('cursor_value').nullable();
      tb.text('cursor_key').nullable();
      tb.bigInteger('last_rescan_at').nullable();
      tb.bigInteger('updated_at').notNullable();
    });
  },
  async down(knex, t) {
    await knex.schema.dropTableIfExists(t.watermarks);
  },
};
