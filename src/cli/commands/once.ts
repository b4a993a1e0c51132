import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('once')
    .description('(not yet available)')
    .action(() => {
      throw new Error('once: not implemented yet');
    });
}
