import type { StateMigration } from './types.js';

/**
 * The sync table: outbox and history, one row per source record version and operation.
 * Timestamps are epoch milliseconds (BIGINT): the same on every dialect, no zone games.
 */
export const migration: StateMigration = {
  name: '0003_sync_records',
  async up(knex, t) {
    if (await knex.schema.hasTable(t.syncRecords)) return;
    await knex.schema.createTable(t.syncRecords, (tb) => {
      tb.bigIncrements('id').primary();
      tb.string('kind', 16).notNullable();
      tb.string('source_key', 191).notNullable();
      tb.string('version', 64).notNullable();
      tb.integer('generation').notNullable().defaultTo(0);
      tb.string('operation', 8).notNullable();
      tb.string('idempotency_key', 64).nullable();
      tb.string('status', 12).notNullable();
      tb.integer('attempts').notNullable().defaultTo(0);
      tb.bigInteger('next_attempt_at').notNullable();
      tb.string('lease_owner', 64).nullable();
      tb.bigInteger('lease_until').nullable();
      tb.bigInteger('revokes_id').nullable();
      tb.string('approval_id', 32).nullable();
      tb.integer('feishu_code').nullable();
      tb.text('feishu_msg').nullable();
      tb.string('error_code', 64).nullable();
      tb.text('reasons').nullable();
      tb.text('payload').nullable();
      tb.string('user_id', 128).nullable();
      tb.string('effective_date', 10).nullable();
      tb.bigInteger('created_at').notNullable();
      tb.bigInteger('updated_at').notNullable();
      tb.bigInteger('sent_at').nullable();
      tb.unique(['kind', 'source_key', 'version', 'operation', 'generation'], { indexName: `${t.syncRecords}_version_uq` });
      tb.index(['status', 'next_attempt_at'], `${t.syncRecords}_due_idx`);
      // The claim reads one status in id order and stops at its limit, however deep the outbox.
      tb.index(['status', 'id'], `${t.syncRecords}_claim_idx`);
      tb.index(['kind', 'source_key', 'id'], `${t.syncRecords}_key_idx`);
    });
  },
  async down(knex, t) {
    await knex.schema.dropTableIfExists(t.syncRecords);
  },
};
