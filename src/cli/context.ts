import type { Command } from 'commander';
import { loadConfig, type ResolvedConfig } from '../config/load.js';
import { connect, type Knex } from '../db/connect.js';
import { createLogger, setLogger, type Logger } from '../log/logger.js';
import { stateTables, type StateTables } from '../state/tables.js';

/** Global options every command sees (defined on the root program). */
export function globalOptions(cmd: Command): { config?: string } {
  return cmd.optsWithGlobals() as { config?: string };
}

export interface CommandContext {
  readonly config: ResolvedConfig;
  readonly logger: Logger;
}

/** Load and validate the configuration, then install the configured logger. */
export function loadContext(cmd: Command): CommandContext {
  const config = loadConfig({ configPath: globalOptions(cmd).config });
  const logger = createLogger({ level: config.log.level, format: config.log.format });
  setLogger(logger);
  return { config, logger };
}

export interface Databases {
  readonly source: Knex;
  /** The state DB; the same handle as `source` when both URLs are equal. */
  readonly state: Knex;
  readonly tables: StateTables;
  close(): Promise<void>;
}

/** Open the source and state databases (one pool when they are the same database). */
export function openDatabases(config: ResolvedConfig, opts: { poolMax?: number } = {}): Databases {
  const shared = config.state.url === config.source.url;
  // The source is only read: a SQLite source opens read-only and must exist (the state
  // database, when it is the same file, needs it writable).
  const source = connect(config.source.url, { poolMax: opts.poolMax ?? 4, role: shared ? 'source and state' : 'source', mustExist: true, readonly: !shared });
  let state: Knex;
  try {
    state = shared ? source : connect(config.state.url, { poolMax: opts.poolMax ?? 4, role: 'state' });
  } catch (err) {
    void source.destroy();
    throw err;
  }
  return {
    source,
    state,
    tables: stateTables(config.state.table_prefix),
    async close() {
      await source.destroy();
      if (state !== source) await state.destroy();
    },
  };
}
