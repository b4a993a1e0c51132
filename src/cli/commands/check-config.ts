import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('check-config')
    .description('(not yet available)')
    .action(() => {
      throw new Error('check-config: not implemented yet');
    });
}
