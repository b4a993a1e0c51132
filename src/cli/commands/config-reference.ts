import type { Command } from 'commander';
import { renderConfigReference } from '../../config/reference.js';

export function register(program: Command): void {
  program
    .command('config-reference')
    .description('print the configuration reference (Markdown) generated from the schema')
    .action(() => {
      process.stdout.write(renderConfigReference());
    });
}
