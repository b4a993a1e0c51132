import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('preview')
    .description('(not yet available)')
    .action(() => {
      throw new Error('preview: not implemented yet');
    });
}
