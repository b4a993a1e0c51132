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
  const source = connect(config.source.url, { poolMax: opts.poolMax ?? 4 });
  const state = config.state.url === config.source.url ? source : connect(config.state.url, { poolMax: opts.poolMax ?? 4 });
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
