/**
 * Secret redaction for everything that leaves the process as text: log lines, error
 * messages printed to stderr, and payloads stored in the sync table.
 *
 * Two layers: exact values registered at start-up (app secret, DB passwords, tokens as
 * they are fetched), and patterns that catch secrets we were never told about
 * (bearer headers, Feishu tenant tokens, passwords inside connection URLs).
 */
const secrets = new Set<string>();
export const REDACTED = '[REDACTED]';

/** Register a value that must never appear in output. Short values are ignored (too many false hits). */
export function registerSecret(value: string | undefined | null): void {
  if (typeof value === 'string' && value.length >= 4) secrets.add(value);
}

export function clearSecretsForTests(): void {
  secrets.clear();
}

const PATTERNS: Array<[RegExp, string]> = [
  // Authorization: Bearer t-xxxx
  [/(bearer\s+)[A-Za-z0-9._~+/=-]+/gi, `$1${REDACTED}`],
  // Feishu tenant / user / app tokens: t-…, u-…, a-…
  [/\b([tua]-)[A-Za-z0-9._-]{16,}/g, `$1${REDACTED}`],
  // user:password@ in URLs
  [/(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@\s]+@/gi, `$1${REDACTED}@`],
  // app_secret=…, password=… (query strings, connection strings, key=value logs)
  [/((?:app_secret|password|passwd|pwd|secret|access_token|tenant_access_token)["']?\s*=\s*["']?)[^"'\s,&}]+/gi, `$1${REDACTED}`],
  // "app_secret":"…", app_secret: '…' (JSON, quoted YAML). A colon with an unquoted word after
  // it is prose — `feishu.app_secret: environment variable FEISHU_APP_SECRET is not set` —
  // and is left alone, so a message about a secret keeps naming it.
  [/((?:app_secret|password|passwd|pwd|secret|access_token|tenant_access_token)["']?\s*:\s*["'])[^"'\s,&}]+/gi, `$1${REDACTED}`],
];

export function redact(text: string): string {
  let out = text;
  for (const s of secrets) {
    if (out.includes(s)) out = out.split(s).join(REDACTED);
  }
  for (const [re, rep] of PATTERNS) out = out.replace(re, rep);
  return out;
}

/** Deep-redact a JSON-like value (strings anywhere inside objects and arrays). */
export function redactValue<T>(value: T, depth = 0): T {
  if (typeof value === 'string') return redact(value) as T;
  if (depth > 8 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redactValue(v, depth + 1)) as T;
  if (value instanceof Error) return sanitizeErrorText(value.message) as T;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = redactEntry(k, v, depth + 1);
  return out as T;
}

const SECRET_KEY = /secret|password|passwd|token|authorization/i;

const ERROR_KEY = /^(?:error|err|cause|lastError)$/i;

/**
 * Redact one key/value pair: a string under a secret-sounding key is dropped whole, one
 * under an error key is sanitised like every error text (masked values, size cap).
 */
export function redactEntry(key: string, value: unknown, depth = 0): unknown {
  if (typeof value === 'string' && ERROR_KEY.test(key)) return sanitizeErrorText(value);
  return SECRET_KEY.test(key) && typeof value === 'string' ? REDACTED : redactValue(value, depth);
}

/** The longest error text written anywhere (log line field, runs table, /healthz, status, stderr). */
export const ERROR_TEXT_MAX = 1000;

const SQL_START = /^\s*(?:select|insert|update|delete|with|create|alter|drop|pragma|replace)\b/i;
const QUOTED = /'(?:[^'\\]|\\.|'')*'/g;
/*
 * Drivers quote the offending value in some messages: MySQL "Duplicate entry 'X' for key",
 * "Incorrect datetime value: 'X' for column", PostgreSQL 'invalid input syntax for type
 * integer: "X"'. Identifiers ("Unknown column 'x'") are quoted the same way but follow
 * other words, so only the quote after these words is masked.
 */
const VALUE_QUOTES: Array<[RegExp, string]> = [
  [/(\b(?:entry|value:?|values?\s+for)\s+)'(?:[^'\\]|\\.|'')*'/gi, "$1'…'"],
  [/(\b(?:syntax|value|representation) for (?:type )?[\w ()]+:\s*)"(?:[^"\\]|\\.)*"/gi, '$1"…"'],
  [/(\bout of range:\s*)"(?:[^"\\]|\\.)*"/gi, '$1"…"'],
];

/**
 * The one function every error text passes before it leaves the process or reaches a table:
 * secrets redacted, values a driver echoed masked, an SQL statement a query builder glued in
 * front moved behind the driver's message with its literals masked, at most ERROR_TEXT_MAX
 * characters. Idempotent, so layers may apply it again.
 */
export function sanitizeErrorText(text: string, max = ERROR_TEXT_MAX): string {
  let out = text;
  if (SQL_START.test(out) && out.includes(' - ')) {
    // "<statement> - <driver message>": the message is what an operator needs; the
    // statement may hold bound values inlined as literals.
    const cut = out.lastIndexOf(' - ');
    out = `${out.slice(cut + 3)} [statement: ${out.slice(0, cut).replace(QUOTED, '?')}]`;
  }
  for (const [re, rep] of VALUE_QUOTES) out = out.replace(re, rep);
  out = redact(out);
  if (out.length > max) out = `${out.slice(0, max - 24)}… (${out.length} chars)`;
  return out;
}
