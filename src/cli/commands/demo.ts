import type { Command } from 'commander';
import { ExitCode } from '../../errors.js';
import { runDemo } from '../../demo/demo.js';
import { setExitCode } from '../exit.js';

export function register(program: Command): void {
  program
    .command('demo')
    .description('a one-command demo: sample SQLite HR database + in-process Feishu emulator, sync, edit, cancel, sync again')
    .option('--dir <dir>', 'where the demo database goes', './data/demo')
    .action(async (opts: { dir: string }, cmd: Command) => {
      const r = await runDemo({ dir: opts.dir });
      setExitCode(cmd, r.ok ? ExitCode.OK : ExitCode.RUNTIME);
    });
}
