/** BIGINT columns come back as strings from pg and mysql2 (bigNumberStrings): normalise to numbers. */
export function toMillis(v: number | string | null | undefined): number | null {
  if (v === null || v === undefined) return null;
  return typeof v === 'number' ? v : Number(v);
}

export function toInt(v: number | string | null | undefined): number {
  return v === null || v === undefined ? 0 : Number(v);
}

/** JSON text column → value (null on NULL or unreadable text). */
export function fromJson<T>(v: string | null | undefined): T | null {
  if (v === null || v === undefined) return null;
  try {
    return JSON.parse(v) as T;
  } catch {
    return null;
  }
}
