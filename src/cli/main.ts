import { Command, CommanderError } from 'commander';
import { ExitCode, describeError } from '../errors.js';
import { redact } from '../log/redact.js';
import { flushLogger, getLogger } from '../log/logger.js';
import { COMMANDS } from './commands/index.js';
import { addCommandHelp } from './help.js';
import { exitCodeFor, exitCodeOf } from './exit.js';
import { PACKAGE_VERSION } from '../version.js';

export function buildProgram(): Command {
  const program = new Command('attendance-sync')
    .description('Keeps Feishu (Lark) Attendance in step with a legacy HR approval database.')
    .version(PACKAGE_VERSION, '-V, --version')
    .option('-c, --config <file>', 'configuration file (else $ATTENDANCE_SYNC_CONFIG, else config/attendance-sync.yaml)')
    .showHelpAfterError('(run with --help for usage)')
    // Subcommands inherit this: their --help lists the global --config too.
    .configureHelp({ showGlobalOptions: true })
    .exitOverride();
  for (const register of COMMANDS) register(program);
  addCommandHelp(program);
  return program;
}

/**
 * Runs the CLI and returns the exit code: 0 ok, 1 runtime failure, 2 usage or config
 * error. Errors are printed as one redacted message, never as a stack trace.
 */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  let code: number = ExitCode.OK;
  try {
    await program.parseAsync(argv);
    code = exitCodeOf(program);
  } catch (err) {
    code = exitCodeFor(err);
    if (!(err instanceof CommanderError)) {
      process.stderr.write(`attendance-sync: ${redact(describeError(err))}\n`);
      if (process.env.ATTENDANCE_SYNC_DEBUG === '1' && err instanceof Error && err.stack) process.stderr.write(redact(err.stack) + '\n');
    }
  }
  await flushLogger(getLogger());
  return code;
}
