import type { ModelKind } from './source.js';

/*
 * The steps of a history, as data: generated from a seed, printed, parsed back (--replay),
 * and shrunk by dropping steps. A step that names a row does so by a number taken modulo the
 * rows that qualify when it runs, so it still means something once earlier steps are gone.
 */

export type Step =
  // source changes
  | { t: 'insert'; kind: ModelKind; emp: number; day: number; hour: number; hours: number; approved: boolean }
  | { t: 'edit'; kind: ModelKind; ref: number; minutes: number }
  | { t: 'cancel'; kind: ModelKind; ref: number }
  | { t: 'reapprove'; kind: ModelKind; ref: number }
  | { t: 'hardDelete'; kind: ModelKind; ref: number }
  | { t: 'nullKey'; kind: ModelKind; emp: number; day: number; hour: number }
  | { t: 'futureUpdatedAt'; kind: ModelKind; ref: number }
  | { t: 'dupJoin'; ref: number }
  // operator actions
  | { t: 'once' }
  | { t: 'rescan' }
  | { t: 'kill'; afterCalls: number }
  | { t: 'retry'; status: 'failed' | 'dead' }
  | { t: 'backfill' }
  | { t: 'resend' }
  // Feishu conditions
  | { t: 'storedThenFailed'; on: boolean }
  | { t: 'scope'; emp: number | null }
  | { t: 'seal'; day: number | null }
  | { t: 'outage'; on: boolean }
  | { t: 'clock'; days: number };

export type StepType = Step['t'];

export const STEP_TYPES: readonly StepType[] = [
  'insert', 'edit', 'cancel', 'reapprove', 'hardDelete', 'nullKey', 'futureUpdatedAt', 'dupJoin',
  'once', 'rescan', 'kill', 'retry', 'backfill', 'resend',
  'storedThenFailed', 'scope', 'seal', 'outage', 'clock',
];

/** Relative weights of the step types in a generated history. */
const WEIGHTS: Readonly<Record<StepType, number>> = {
  insert: 10, edit: 8, cancel: 5, reapprove: 4, hardDelete: 2, nullKey: 2, futureUpdatedAt: 1, dupJoin: 2,
  once: 12, rescan: 3, kill: 2, retry: 5, backfill: 2, resend: 2,
  storedThenFailed: 3, scope: 3, seal: 2, outage: 2, clock: 3,
};

export const SOURCE_STEPS: ReadonlySet<StepType> = new Set(['insert', 'edit', 'cancel', 'reapprove', 'hardDelete', 'nullKey', 'futureUpdatedAt', 'dupJoin']);
export const OPERATOR_STEPS: ReadonlySet<StepType> = new Set(['once', 'rescan', 'kill', 'retry', 'backfill', 'resend']);
export const FEISHU_STEPS: ReadonlySet<StepType> = new Set(['storedThenFailed', 'scope', 'seal', 'outage', 'clock']);

/**
 * `--steps`: a comma-separated list of step types, `all`, or `all,-nullKey,-dupJoin` (all but
 * those). Source and operator basics (insert, once) stay on: a history needs them.
 */
export function parseStepTypes(spec: string): Set<StepType> {
  const on = new Set<StepType>();
  for (const raw of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const neg = raw.startsWith('-');
    const name = neg ? raw.slice(1) : raw;
    if (name === 'all') {
      for (const t of STEP_TYPES) neg ? on.delete(t) : on.add(t);
      continue;
    }
    if (!(STEP_TYPES as readonly string[]).includes(name)) throw new Error(`--steps: unknown step "${name}" (known: all, ${STEP_TYPES.join(', ')})`);
    if (neg) on.delete(name as StepType);
    else on.add(name as StepType);
  }
  on.add('insert');
  on.add('once');
  return on;
}

function pickType(rng: () => number, enabled: ReadonlySet<StepType>): StepType {
  const types = STEP_TYPES.filter((t) => enabled.has(t));
  const total = types.reduce((a, t) => a + WEIGHTS[t], 0);
  let r = rng() * total;
  for (const t of types) {
    if (r < WEIGHTS[t]) return t;
    r -= WEIGHTS[t];
  }
  return types[types.length - 1]!;
}

const int = (rng: () => number, lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));
const kindOf = (rng: () => number): ModelKind => (rng() < 0.6 ? 'leave' : 'overtime');

function generateStep(rng: () => number, t: StepType): Step {
  switch (t) {
    case 'insert': {
      const kind = kindOf(rng);
      return { t, kind, emp: int(rng, 0, 3), day: int(rng, -12, 12), hour: kind === 'leave' ? int(rng, 9, 15) : int(rng, 18, 20), hours: int(rng, 1, 3), approved: rng() < 0.85 };
    }
    case 'edit': {
      const minutes = rng() < 0.2 ? (rng() < 0.5 ? -1440 : 1440) : 30 * int(rng, 1, 4) * (rng() < 0.5 ? -1 : 1);
      return { t, kind: kindOf(rng), ref: int(rng, 0, 99), minutes };
    }
    case 'cancel':
    case 'reapprove':
    case 'hardDelete':
    case 'futureUpdatedAt':
      return { t, kind: kindOf(rng), ref: int(rng, 0, 99) };
    case 'nullKey':
      return { t, kind: kindOf(rng), emp: int(rng, 0, 3), day: int(rng, -12, 12), hour: int(rng, 9, 15) };
    case 'dupJoin':
      return { t, ref: int(rng, 0, 99) };
    case 'once':
    case 'rescan':
    case 'backfill':
    case 'resend':
      return { t };
    case 'kill':
      return { t, afterCalls: int(rng, 1, 6) };
    case 'retry':
      return { t, status: rng() < 0.5 ? 'failed' : 'dead' };
    case 'storedThenFailed':
    case 'outage':
      return { t, on: rng() < 0.65 };
    case 'scope':
      return { t, emp: rng() < 0.6 ? int(rng, 0, 3) : null };
    case 'seal':
      return { t, day: rng() < 0.6 ? int(rng, -10, 8) : null };
    case 'clock':
      return { t, days: int(rng, 1, 3) };
  }
}

/** A history: a few inserts to start with, then `length` steps drawn by weight. */
export function generateHistory(rng: () => number, enabled: ReadonlySet<StepType>, o: { minSteps: number; maxSteps: number }): Step[] {
  const steps: Step[] = [];
  const first = int(rng, 1, 4);
  for (let i = 0; i < first; i++) steps.push(generateStep(rng, 'insert'));
  const n = int(rng, o.minSteps, o.maxSteps);
  for (let i = 0; i < n; i++) steps.push(generateStep(rng, pickType(rng, enabled)));
  return steps;
}

/** One line per step, for the report. */
export function formatStep(s: Step): string {
  const rest = Object.entries(s)
    .filter(([k]) => k !== 't')
    .map(([k, v]) => `${k}=${v === null ? '-' : String(v)}`)
    .join(' ');
  return rest ? `${s.t} ${rest}` : s.t;
}

export function isFaultStep(s: Step): boolean {
  return s.t === 'kill' || (FEISHU_STEPS.has(s.t) && !('on' in s && !s.on) && !('emp' in s && s.t === 'scope' && s.emp === null) && !(s.t === 'seal' && s.day === null));
}
