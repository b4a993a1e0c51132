import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('demo')
    .description('(not yet available)')
    .action(() => {
      throw new Error('demo: not implemented yet');
    });
}
