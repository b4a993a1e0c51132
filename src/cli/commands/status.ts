import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('status')
    .description('(not yet available)')
    .action(() => {
      throw new Error('status: not implemented yet');
    });
}
