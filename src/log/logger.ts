import winston from 'winston';
import { redact, redactEntry } from './redact.js';

export type LogFormat = 'auto' | 'json' | 'pretty';
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type Logger = winston.Logger;

/**
 * Logs go to stderr so that command output on stdout (`status --json`, `preview`) stays
 * machine-readable. Format `auto` is JSON when stderr is not a terminal or NODE_ENV is
 * production (pm2, systemd, containers), and readable single lines in a terminal.
 */
export function resolveFormat(format: LogFormat = 'auto'): 'json' | 'pretty' {
  if (format !== 'auto') return format;
  if (process.env.NODE_ENV === 'production') return 'json';
  return process.stderr.isTTY ? 'pretty' : 'json';
}

const redactFormat = winston.format((info) => {
  for (const key of Object.keys(info)) {
    const v = (info as Record<string, unknown>)[key];
    (info as Record<string, unknown>)[key] = key === 'message' && typeof v === 'string' ? redact(v) : redactEntry(key, v);
  }
  return info;
});

/**
 * A log call may carry a short human rendering of its fields under this key: a terminal
 * shows it instead of every field, JSON output (which skips symbol keys) keeps the fields.
 */
export const PRETTY = Symbol.for('attendance-sync.pretty');

function prettyLine(info: winston.Logform.TransformableInfo): string {
  const short = (info as Record<symbol, unknown>)[PRETTY];
  if (typeof short === 'string') return `${String(info.timestamp)} ${String(info.level)} ${String(info.message)}  ${redact(short)}`;
  const { level, message, timestamp, ...rest } = info as Record<string, unknown>;
  const extras = Object.entries(rest)
    .filter(([k]) => typeof k === 'string')
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${String(timestamp)} ${String(level)} ${String(message)}${extras ? `  ${extras}` : ''}`;
}

export function createLogger(opts: { level?: LogLevel; format?: LogFormat; stream?: NodeJS.WritableStream } = {}): Logger {
  const fmt = resolveFormat(opts.format);
  const transport = opts.stream
    ? new winston.transports.Stream({ stream: opts.stream })
    : new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug', 'verbose', 'silly'] });
  return winston.createLogger({
    level: opts.level ?? (process.env.LOG_LEVEL as LogLevel | undefined) ?? 'info',
    format: winston.format.combine(
      winston.format.errors({ stack: false }),
      redactFormat(),
      winston.format.timestamp(),
      fmt === 'json'
        ? winston.format.json()
        : winston.format.combine(winston.format.colorize({ level: !opts.stream && process.stderr.isTTY === true }), winston.format.printf(prettyLine)),
    ),
    transports: [transport],
  });
}

let root: Logger | undefined;

/** The process-wide logger. Commands replace it once the config is known (`setLogger`). */
export function getLogger(): Logger {
  root ??= createLogger();
  return root;
}

export function setLogger(logger: Logger): void {
  root = logger;
}

/** Wait until every transport has written its buffered lines; call before process.exit. */
export async function flushLogger(logger: Logger = getLogger()): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 2000);
    logger.on('finish', () => {
      clearTimeout(timer);
      resolve();
    });
    logger.end();
  });
  root = undefined;
}
