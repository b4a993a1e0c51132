import { DateTime } from 'luxon';
import type { ResolvedConfig } from '../config/load.js';
import type { AnyKindConfig } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import { isKind, KINDS, type Kind } from '../kinds.js';
import { enabledKinds } from '../pipeline/deps.js';

/* The `--from --to [--kinds]` arguments that backfill and reconcile share. */

function date(name: string, v: string | undefined): string {
  const d = v ? DateTime.fromISO(v) : null;
  if (!v || !d?.isValid || !/^\d{4}-\d{2}-\d{2}$/.test(v)) throw new ConfigError([`${name}: a date as YYYY-MM-DD is required`], 'invalid arguments');
  return v;
}

/** The range and the kinds asked for (null: every configured kind), checked before the configuration is read. */
export function dateRange(opts: { from: string; to: string; kinds?: string | undefined }): { from: string; to: string; wanted: string[] | null } {
  const from = date('--from', opts.from);
  const to = date('--to', opts.to);
  if (to < from) throw new ConfigError(['--to: must not be before --from'], 'invalid arguments');
  const wanted = opts.kinds ? opts.kinds.split(',').map((s) => s.trim()) : null;
  for (const k of wanted ?? []) if (!isKind(k)) throw new ConfigError([`--kinds: unknown kind "${k}" (${KINDS.join(', ')})`], 'invalid arguments');
  return { from, to, wanted };
}

/** The configured and enabled kinds among those asked for; a kind asked for but not configured is an error. */
export function selectKinds(config: ResolvedConfig, wanted: readonly string[] | null): Array<[Kind, AnyKindConfig]> {
  const configured = enabledKinds(config).map(([k]) => k as string);
  const unknown = (wanted ?? []).filter((k) => !configured.includes(k));
  if (unknown.length > 0) throw new ConfigError(unknown.map((k) => `--kinds: ${k} is not configured and enabled (configured: ${configured.join(', ') || 'none'})`), 'invalid arguments');
  return enabledKinds(config).filter(([k]) => !wanted || wanted.includes(k));
}
