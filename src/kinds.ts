/**
 * The four record kinds, and how each is named on the Feishu side.
 * Every module uses these maps instead of spelling the names again.
 */
export const KINDS = Object.freeze(['leave', 'overtime', 'trip', 'out'] as const);
export type Kind = (typeof KINDS)[number];

/** The array of `user_approval` that carries an item of this kind. */
export const KIND_ARRAY = Object.freeze({
  leave: 'leaves',
  overtime: 'overtime_works',
  trip: 'trips',
  out: 'outs',
} as const satisfies Record<Kind, string>);

/** `approval_type` of approval_infos/process (note: 'overtime', not 'overtime_work'). */
export const KIND_APPROVAL_TYPE = Object.freeze({
  leave: 'leave',
  overtime: 'overtime',
  trip: 'trip',
  out: 'out',
} as const satisfies Record<Kind, string>);

export function isKind(value: string): value is Kind {
  return (KINDS as readonly string[]).includes(value);
}
