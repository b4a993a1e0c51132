import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('migrate')
    .description('(not yet available)')
    .action(() => {
      throw new Error('migrate: not implemented yet');
    });
}
