import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('run')
    .description('(not yet available)')
    .action(() => {
      throw new Error('run: not implemented yet');
    });
}
