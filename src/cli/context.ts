import type { Command } from 'commander';
import { loadConfig, type ResolvedConfig } from '../config/load.js';
import { createLogger, setLogger, type Logger } from '../log/logger.js';

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
