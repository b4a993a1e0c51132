import type { StateMigration } from './types.js';
import { migration as m0001 } from './0001_watermarks.js';
import { migration as m0002 } from './0002_records.js';
import { migration as m0003 } from './0003_sync_records.js';
import { migration as m0004 } from './0004_runs.js';
import { migration as m0005 } from './0005_lock.js';
import { migration as m0006 } from './0006_kind_state.js';
import { migration as m0008 } from './0008_tenant.js';
import { migration as m0010 } from './0010_retention_index.js';
import { migration as m0012 } from './0012_quota.js';
import { migration as m0013 } from './0013_level_indexes.js';
import { migration as m0014 } from './0014_resolution.js';
import { migration as m0016 } from './0016_console_indexes.js';
import { migration as m0017 } from './0017_lookups.js';
import { migration as m0018 } from './0018_status_counts.js';

/** Every migration, in order. Names are stable forever: knex records them as applied. */
export const MIGRATIONS: readonly StateMigration[] = [m0001, m0002, m0003, m0004, m0005, m0006, m0008, m0010, m0012, m0013, m0014, m0016, m0017, m0018];
export type { StateMigration };
