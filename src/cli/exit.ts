import { CommanderError, type Command } from 'commander';
import { AppError, ExitCode } from '../errors.js';

/**
 * The exit code of one CLI run: 0 ok, 1 runtime failure, 2 usage or config error.
 *
 * A command sets it on the program it runs under (never `process.exit`, which would cut
 * the log flush short); `main` reads it once the action has returned. Kept here, apart from
 * `main.ts`, so that commands and the program that registers them do not import each other.
 */
const codes = new WeakMap<Command, number>();

function rootOf(cmd: Command): Command {
  let root = cmd;
  while (root.parent) root = root.parent;
  return root;
}

/** Commands set their exit code through this instead of calling process.exit. */
export function setExitCode(cmd: Command, code: number): void {
  codes.set(rootOf(cmd), code);
}

/** The code a command set on this program (OK when none did). */
export function exitCodeOf(program: Command): number {
  return codes.get(rootOf(program)) ?? ExitCode.OK;
}

/** The exit code of an error that ended a run. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.OK;
    return ExitCode.USAGE;
  }
  if (err instanceof AppError) return err.exitCode;
  return ExitCode.RUNTIME;
}
