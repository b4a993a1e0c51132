/*
 * Days passing, for the model test. Feishu (the emulator) and the worker must see the same
 * jump, or a lookup would search a window that never existed on either side: both read
 * `Date.now()` (luxon too), so the jump is an offset on it. The worker runs in this process
 * (`setClockOffset`) or as a child started with `--import` of this module, which takes the
 * offset from MODEL_CLOCK_OFFSET_MS. The source database keeps its own clock: its rows are
 * stamped with `realNow()`, as an HR application on another host would stamp them.
 */

const real = Date.now.bind(Date);
let offsetMs = Number(process.env.MODEL_CLOCK_OFFSET_MS ?? 0) || 0;

Date.now = () => real() + offsetMs;

export function setClockOffset(ms: number): void {
  offsetMs = ms;
}

export function clockOffset(): number {
  return offsetMs;
}

/** The wall clock without the offset. */
export function realNow(): number {
  return real();
}
