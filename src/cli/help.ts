import type { Command } from 'commander';

/** One example per command, shown under its --help. */
const EXAMPLES: Readonly<Record<string, readonly string[]>> = {
  migrate: ['npx attendance-sync migrate --config config/attendance-sync.yaml', 'STATE_DATABASE_URL=postgres://sync@db:5432/hr npx attendance-sync migrate --status'],
  'check-config': ['npx attendance-sync check-config --config config/attendance-sync.yaml --feishu'],
  preview: ['npx attendance-sync preview --kind leave --limit 20', 'npx attendance-sync preview --kind leave --from 2026-03-01'],
  once: ['npx attendance-sync once --config config/attendance-sync.yaml', 'npx attendance-sync once --rescan'],
  run: ['npx attendance-sync run --config config/attendance-sync.yaml', 'pm2 start ecosystem.config.js --env production'],
  backfill: ['npx attendance-sync backfill --from 2026-01-01 --to 2026-03-31 --dry-run', 'npx attendance-sync backfill --from 2026-01-01 --to 2026-03-31 --kinds leave,trip'],
  status: ['npx attendance-sync status', 'npx attendance-sync status --json', 'ATTENDANCE_SYNC_CONFIG_DIR=config npx attendance-sync status --all'],
  retry: ['npx attendance-sync retry --status failed --kind leave', 'npx attendance-sync retry --status dead --id 1234'],
  reconcile: ['npx attendance-sync reconcile --from 2026-03-01 --to 2026-03-31', 'npx attendance-sync reconcile --from 2026-03-01 --to 2026-03-31 --repair'],
  emulator: ['npx attendance-sync emulator --port 8787 --strict --faults 5xx=0.05'],
  demo: ['npx attendance-sync demo --dir ./data/demo'],
  'config-reference': ['npx attendance-sync config-reference > docs/configuration.md'],
};

const EXIT_CODES = 'Exit codes: 0 ok, 1 runtime failure (a database or Feishu problem, operations not sent), 2 usage or configuration error.';

/** Under every subcommand's --help: the global options (commander shows them), exit codes, an example. */
export function addCommandHelp(program: Command): void {
  for (const cmd of program.commands) {
    const examples = EXAMPLES[cmd.name()] ?? [];
    cmd.addHelpText('after', `\n${EXIT_CODES}\n${examples.length > 0 ? `\nExample${examples.length > 1 ? 's' : ''}:\n${examples.map((e) => `  $ ${e}`).join('\n')}\n` : ''}`);
  }
  program.addHelpText('after', `\n${EXIT_CODES}\nThe configuration: --config FILE, else $ATTENDANCE_SYNC_CONFIG, else config/attendance-sync.yaml.\nRun \`npx attendance-sync <command> --help\` for a command's options and an example.\n`);
}
