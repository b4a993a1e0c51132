import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('emulator')
    .description('(not yet available)')
    .action(() => {
      throw new Error('emulator: not implemented yet');
    });
}
