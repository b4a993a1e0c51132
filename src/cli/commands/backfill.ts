import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('backfill')
    .description('(not yet available)')
    .action(() => {
      throw new Error('backfill: not implemented yet');
    });
}
