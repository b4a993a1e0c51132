import type { Command } from 'commander';
import { configDir, configFiles } from '../../config/configDir.js';
import { ExitCode } from '../../errors.js';
import { setExitCode } from '../exit.js';
import { renderStatusAll, statusAll } from './statusAll.js';

/** `status --all`: every configuration of the directory; exit 1 when any has a problem. */
export async function runStatusAll(cmd: Command, opts: { json?: boolean; configDir?: string }): Promise<void> {
  const dir = configDir(opts.configDir);
  const all = await statusAll(configFiles(dir));
  process.stdout.write(opts.json ? JSON.stringify({ dir, configs: all }, null, 2) + '\n' : renderStatusAll(dir, all));
  setExitCode(cmd, all.some((s) => s.problems.length > 0) ? ExitCode.RUNTIME : ExitCode.OK);
}
