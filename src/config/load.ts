import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../errors.js';
import { registerSecret } from '../log/redact.js';
import { parseDatabaseUrl } from '../db/url.js';
import { configSchema, type ParsedConfig } from './schema.js';
import { formatIssues } from './issues.js';

export const DEFAULT_CONFIG_PATH = 'config/attendance-sync.yaml';
export const DEFAULT_TABLE_PREFIX = 'attendance_sync_';

/** Environment variables that override values of the file (secrets and URLs). */
export const ENV_OVERRIDES: ReadonlyArray<readonly [string, readonly string[]]> = [
  ['FEISHU_APP_ID', ['feishu', 'app_id']],
  ['FEISHU_APP_SECRET', ['feishu', 'app_secret']],
  ['FEISHU_BASE_URL', ['feishu', 'base_url']],
  ['SOURCE_DATABASE_URL', ['source', 'url']],
  ['STATE_DATABASE_URL', ['state', 'url']],
  ['ATTENDANCE_SYNC_CONSOLE_TOKEN', ['console', 'token']],
];

/** The validated configuration every module receives; nothing reads process.env after this. */
export type ResolvedConfig = Omit<ParsedConfig, 'state'> & {
  readonly state: ParsedConfig['state'] & { readonly url: string };
  /** The file it came from (absolute), for messages. */
  readonly configPath: string;
};

export interface LoadOptions {
  configPath?: string;
  env?: NodeJS.ProcessEnv;
}

/** `--config FILE`, else $ATTENDANCE_SYNC_CONFIG, else config/attendance-sync.yaml. */
export function findConfigPath(opts: LoadOptions = {}): { path: string; explicit: boolean } {
  const env = opts.env ?? process.env;
  if (opts.configPath) return { path: path.resolve(opts.configPath), explicit: true };
  if (env.ATTENDANCE_SYNC_CONFIG) return { path: path.resolve(env.ATTENDANCE_SYNC_CONFIG), explicit: true };
  return { path: path.resolve(DEFAULT_CONFIG_PATH), explicit: false };
}

function readYaml(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(
      [code === 'ENOENT' ? `${file}: file not found (pass --config FILE or set ATTENDANCE_SYNC_CONFIG)` : `${file}: cannot read (${code ?? 'error'})`],
      'cannot load configuration',
    );
  }
  const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => `${path.basename(file)}: ${e.message.split('\n')[0]}`),
      'invalid YAML',
    );
  }
  try {
    // An alias bomb (a few lines expanding to millions of nodes) is refused, not expanded.
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) ?? {};
  } catch (err) {
    throw new ConfigError([`${path.basename(file)}: ${err instanceof Error ? err.message : String(err)} (YAML aliases expand to too many nodes)`], 'invalid YAML');
  }
}

/** Aliases a config file may expand (yaml's own default); a real config uses a handful. */
const MAX_ALIAS_COUNT = 100;

const VAR_RE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * `${VAR}` and `${VAR:-default}` inside string values. A variable that is not set and has
 * no default is an error naming the key, so a typo never turns into an empty secret.
 */
export function interpolate(value: unknown, env: NodeJS.ProcessEnv, problems: string[], at: string[] = []): unknown {
  if (typeof value === 'string') {
    return value.replace(VAR_RE, (_m, name: string, fallback: string | undefined) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (fallback !== undefined) return fallback;
      problems.push(`${at.join('.') || '(root)'}: environment variable ${name} is not set`);
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, problems, [...at, String(i)]));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolate(v, env, problems, [...at, k]);
    return out;
  }
  return value;
}

function applyEnvOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): void {
  for (const [name, [section, key]] of ENV_OVERRIDES.map(([n, p]) => [n, p] as const)) {
    const v = env[name];
    if (v === undefined || v === '' || section === undefined || key === undefined) continue;
    const current = raw[section];
    const obj = current !== null && typeof current === 'object' && !Array.isArray(current) ? (current as Record<string, unknown>) : {};
    obj[key] = v;
    raw[section] = obj;
  }
}

function checkUrls(cfg: ParsedConfig & { state: { url?: string } }): string[] {
  const problems: string[] = [];
  for (const [p, url] of [
    ['source.url', cfg.source.url],
    ['state.url', cfg.state.url],
  ] as const) {
    if (url === undefined) continue;
    try {
      parseDatabaseUrl(url, p);
    } catch (err) {
      problems.push(...((err as ConfigError).problems ?? [String(err)]));
    }
  }
  return problems;
}

/** Parse and validate a configuration object (already read from YAML). */
export function resolveConfig(rawInput: unknown, opts: { env?: NodeJS.ProcessEnv; configPath?: string } = {}): ResolvedConfig {
  const env = opts.env ?? process.env;
  const problems: string[] = [];
  if (rawInput === null || typeof rawInput !== 'object' || Array.isArray(rawInput)) {
    throw new ConfigError(['(root): the file must hold a YAML mapping (key: value)']);
  }
  const raw = interpolate(rawInput, env, problems) as Record<string, unknown>;
  applyEnvOverrides(raw, env);
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) problems.push(...formatIssues(parsed.error.issues as z.core.$ZodIssue[]));
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  const cfg = parsed.data;
  const urlProblems = checkUrls(cfg);
  if (urlProblems.length > 0) throw new ConfigError(urlProblems);
  registerSecret(cfg.feishu.app_secret);
  registerSecret(cfg.console.token);
  for (const url of [cfg.source.url, cfg.state.url]) {
    if (!url) continue;
    const target = parseDatabaseUrl(url);
    registerSecret(target.password);
    registerSecret(target.tls.passphrase);
  }
  return {
    ...cfg,
    state: { ...cfg.state, url: cfg.state.url ?? cfg.source.url },
    configPath: opts.configPath ?? '(inline)',
  };
}

/** Find, read, interpolate, override from the environment and validate the configuration. */
export function loadConfig(opts: LoadOptions = {}): ResolvedConfig {
  const env = opts.env ?? process.env;
  const found = findConfigPath(opts);
  const raw = readYaml(found.path);
  return resolveConfig(raw, { env, configPath: found.path });
}

/**
 * The state database and table prefix alone: what `migrate` needs. Works with no config
 * file at all (STATE_DATABASE_URL, else SOURCE_DATABASE_URL), and with an incomplete one:
 * only `state` and `source.url` are read.
 */
export async function resolveStateTarget(opts: LoadOptions = {}): Promise<{ url: string; tablePrefix: string }> {
  const env = opts.env ?? process.env;
  const found = findConfigPath(opts);
  let state: Record<string, unknown> = {};
  let sourceUrl: string | undefined;
  const problems: string[] = [];
  if (found.explicit || fs.existsSync(found.path)) {
    const raw = readYaml(found.path) as Record<string, unknown>;
    const interpolated = interpolate({ state: raw.state ?? {}, source: raw.source ?? {} }, env, problems) as {
      state: Record<string, unknown>;
      source: Record<string, unknown>;
    };
    state = interpolated.state ?? {};
    sourceUrl = typeof interpolated.source?.url === 'string' ? interpolated.source.url : undefined;
  }
  const url =
    env.STATE_DATABASE_URL || (typeof state.url === 'string' ? state.url : undefined) || env.SOURCE_DATABASE_URL || sourceUrl;
  const prefix = state.table_prefix ?? DEFAULT_TABLE_PREFIX;
  if (!url) problems.push('state.url: required (set STATE_DATABASE_URL, or state.url / source.url in the config file)');
  if (typeof prefix !== 'string' || !/^[a-z_][a-z0-9_]{0,30}$/.test(prefix)) {
    problems.push('state.table_prefix: lower-case letters, digits and _ (at most 31)');
  }
  if (problems.length > 0 || !url) throw new ConfigError(problems);
  parseDatabaseUrl(url, 'state.url');
  registerSecret(parseDatabaseUrl(url).password);
  return { url, tablePrefix: prefix as string };
}
