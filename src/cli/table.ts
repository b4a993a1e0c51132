/** Cut a cell to `width`, keeping its head and tail (keys differ at either end): `OA-2026-…-000123`. */
export function fit(text: string, width: number): string {
  if (text.length <= width) return text;
  if (width <= 1) return text.slice(0, width);
  const head = Math.ceil((width - 1) / 2);
  return `${text.slice(0, head)}…${text.slice(text.length - (width - 1 - head))}`;
}

/**
 * Columns as wide as their widest cell, each capped: a long key is shortened with an
 * ellipsis instead of pushing the rest of its row out of line. The last column runs free.
 */
export function columns(header: readonly string[], rows: ReadonlyArray<readonly string[]>, caps: readonly number[]): string[] {
  const widths = header.map((h, i) => Math.min(caps[i] ?? 40, Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length))));
  const line = (cells: readonly string[]) =>
    '  ' +
    cells
      .map((c, i) => (i === cells.length - 1 ? c : fit(c, widths[i]!).padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}
