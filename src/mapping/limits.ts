/*
 * The mapper's limits, in one place. Feishu documents none of these except `uniq_id`
 * (< 14 characters); each value is our decision, and the reason for it is given here.
 */
export const MAPPING_LIMITS = Object.freeze({
  /**
   * Free text (reason, remarks), in Unicode code points. Longer text is CUT, not rejected:
   * the reason is descriptive, and refusing the whole leave over its note would keep a real
   * absence out of attendance (and payroll). 1000 is far beyond any real reason and keeps
   * the one-item request (which is also stored in the outbox) small. The cut is
   * deterministic, so the version hash of an unchanged row stays stable; a warning is
   * attached to the mapped row.
   */
  maxTextChars: 1000,
  /**
   * Free text is read from the source cut to this many characters (in SQL): four times what
   * is kept leaves room for the control characters and spaces that cleaning removes, and a
   * 100 MB note never reaches the heap.
   */
  textReadChars: 4000,
  /**
   * Any other mapped value (an id, a code, a time, a status) larger than this many bytes is
   * garbage, never attendance: its row is recorded as invalid without the value being read.
   */
  maxValueBytes: 256 * 1024,
  /** `user_id`: identifiers are never altered, so a longer one is invalid (the state column is 128). */
  maxUserIdChars: 128,
  /** Source key: the state tables store it in a 191-character column (utf8mb4 index limit). */
  maxSourceKeyChars: 191,
  /** A region id (departure, destinations): Feishu's are numeric strings of ~19 digits. */
  maxRegionIdChars: 64,
  /** A record spanning more than this is a data error (a typo in a year), unless the context says otherwise. */
  defaultMaxSpanDays: 366,
  /**
   * Plausible times: nothing before 2000-01-01 (epoch 0, "1900-01-01" placeholders, a
   * yyyyMMdd number read as epoch seconds) and nothing more than this many days after
   * `now` (a year typed as 2062). Both are data errors, never attendance.
   */
  earliestTime: Date.UTC(2000, 0, 1),
  maxDaysAhead: 3 * 366,
});
