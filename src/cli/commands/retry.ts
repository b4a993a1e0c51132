import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('retry')
    .description('(not yet available)')
    .action(() => {
      throw new Error('retry: not implemented yet');
    });
}
