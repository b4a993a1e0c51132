import type { Knex } from 'knex';
import { dialectFor } from '../db/dialect.js';

/*
 * A sample legacy HR schema with the quirks of real systems: employees in their own table
 * (the employee number lives there), leave type codes in a lookup table, half-day and hourly
 * leave, zone-less local timestamps, an approval status column, soft deletes (a timestamp on
 * three tables, a 0/1 flag on one), and an updated_at the application maintains.
 * The same on PostgreSQL, MySQL / MariaDB and SQLite; used by tests, the demo and the docs.
 */

export const SAMPLE_TABLES = Object.freeze(['out_requests', 'trip_requests', 'overtime_requests', 'leave_requests', 'leave_types', 'employees'] as const);

/** A zone-less timestamp with microseconds where the dialect has them. */
function ts(db: Knex, tb: Knex.CreateTableBuilder, name: string): Knex.ColumnBuilder {
  const d = dialectFor(db).name;
  return tb.specificType(name, d === 'pg' ? 'timestamp(6)' : d === 'mysql' ? 'datetime(6)' : 'text');
}

export async function createSampleSchema(db: Knex): Promise<void> {
  await db.schema.createTable('employees', (tb) => {
    tb.integer('id').primary();
    tb.string('employee_no', 20).notNullable().unique();
    tb.string('name', 50).notNullable();
    tb.string('feishu_user_id', 64).nullable();
    tb.string('dept', 50).nullable();
    tb.boolean('active').notNullable().defaultTo(true);
  });
  await db.schema.createTable('leave_types', (tb) => {
    tb.string('code', 16).primary();
    tb.string('name_zh', 50).notNullable();
    tb.string('name_en', 50).notNullable();
    tb.string('unit', 10).notNullable(); // DAY | HALF_DAY | HOUR
  });
  await db.schema.createTable('leave_requests', (tb) => {
    tb.integer('id').primary();
    tb.integer('employee_id').notNullable();
    tb.string('leave_type_code', 16).notNullable();
    ts(db, tb, 'start_at').notNullable();
    ts(db, tb, 'end_at').notNullable();
    tb.decimal('duration', 8, 2).notNullable(); // in the type's unit
    tb.text('reason').nullable();
    tb.string('status', 16).notNullable(); // approved | pending | cancelled | rejected
    ts(db, tb, 'deleted_at').nullable();
    ts(db, tb, 'created_at').notNullable();
    ts(db, tb, 'updated_at').notNullable();
    tb.index(['updated_at', 'id'], 'leave_requests_updated_idx');
    tb.index(['start_at'], 'leave_requests_start_idx');
  });
  await db.schema.createTable('overtime_requests', (tb) => {
    tb.integer('id').primary();
    tb.integer('employee_id').notNullable();
    ts(db, tb, 'start_at').notNullable();
    ts(db, tb, 'end_at').notNullable();
    tb.decimal('hours', 6, 2).notNullable();
    tb.string('day_type', 10).notNullable(); // WORKDAY | RESTDAY | HOLIDAY
    tb.string('compensation', 10).notNullable(); // LIEU | PAY | NONE
    tb.text('reason').nullable();
    tb.string('status', 16).notNullable();
    ts(db, tb, 'deleted_at').nullable();
    ts(db, tb, 'updated_at').notNullable();
    tb.index(['updated_at', 'id'], 'overtime_requests_updated_idx');
    tb.index(['start_at'], 'overtime_requests_start_idx');
  });
  await db.schema.createTable('trip_requests', (tb) => {
    tb.integer('id').primary();
    tb.integer('employee_id').notNullable();
    ts(db, tb, 'start_at').notNullable();
    ts(db, tb, 'end_at').notNullable();
    tb.string('destination', 200).nullable(); // Feishu region ids, comma-separated
    tb.string('transport', 50).nullable(); // PLANE,TRAIN,…
    tb.boolean('round_trip').notNullable().defaultTo(true);
    tb.text('reason').nullable();
    ts(db, tb, 'applied_at').notNullable();
    ts(db, tb, 'approved_at').nullable();
    tb.string('status', 16).notNullable();
    ts(db, tb, 'deleted_at').nullable();
    ts(db, tb, 'updated_at').notNullable();
    tb.index(['updated_at', 'id'], 'trip_requests_updated_idx');
    tb.index(['start_at'], 'trip_requests_start_idx');
  });
  await db.schema.createTable('out_requests', (tb) => {
    tb.integer('id').primary();
    tb.integer('employee_id').notNullable();
    tb.string('out_type', 10).notNullable(); // CLIENT | BANK | GOV
    ts(db, tb, 'start_at').notNullable();
    ts(db, tb, 'end_at').notNullable();
    tb.decimal('hours', 6, 2).notNullable();
    tb.text('reason').nullable();
    tb.string('status', 16).notNullable();
    tb.smallint('is_deleted').notNullable().defaultTo(0);
    ts(db, tb, 'updated_at').notNullable();
    tb.index(['updated_at', 'id'], 'out_requests_updated_idx');
    tb.index(['start_at'], 'out_requests_start_idx');
  });
}

export async function dropSampleSchema(db: Knex): Promise<void> {
  for (const t of SAMPLE_TABLES) await db.schema.dropTableIfExists(t);
}
