import { redact, sanitizeErrorText } from './log/redact.js';

export { ERROR_TEXT_MAX, sanitizeErrorText } from './log/redact.js';

/**
 * Process exit codes, used by every command.
 * 0 ok, 1 runtime failure, 2 usage or configuration error.
 */
export const ExitCode = Object.freeze({ OK: 0, RUNTIME: 1, USAGE: 2 } as const);
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * The one error type the application raises on purpose: a stable `code` an operator
 * can look up in the README, the exit code it maps to, and whether retrying may help.
 * Messages never carry secrets: build them from names and paths, not from values.
 */
export class AppError extends Error {
  readonly code: string;
  readonly exitCode: ExitCode;
  readonly retryable: boolean;

  constructor(code: string, message: string, opts: { exitCode?: ExitCode; retryable?: boolean; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'AppError';
    this.code = code;
    this.exitCode = opts.exitCode ?? ExitCode.RUNTIME;
    this.retryable = opts.retryable ?? false;
  }
}

/** A configuration or usage problem: exit code 2, one line per problem, no stack trace. */
export class ConfigError extends AppError {
  readonly problems: readonly string[];

  constructor(problems: readonly string[], heading = 'invalid configuration') {
    super('CONFIG_INVALID', `${heading}:\n${problems.map((p) => `  - ${p}`).join('\n')}`, { exitCode: ExitCode.USAGE });
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/**
 * A short description of any thrown value (message only, never a stack), sanitised: what every log line, runs-table row, /healthz body and stderr message uses.
 */
export function describeError(err: unknown): string {
  // Duck-typed as well: a driver's native error may come from another realm.
  const message = typeof err === 'object' && err !== null ? (err as { message?: unknown }).message : undefined;
  if (typeof message === 'string') {
    const code = (err as { code?: unknown }).code;
    const prefix = typeof code === 'string' && !message.includes(code) ? `${code}: ` : '';
    // A configuration error is built from paths and names, one line per problem: all of it.
    if (err instanceof ConfigError) return redact(`${prefix}${message}`);
    return sanitizeErrorText(`${prefix}${message}`);
  }
  return sanitizeErrorText(String(err));
}
