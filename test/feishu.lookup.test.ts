import { DateTime } from 'luxon';
import { chunkUserIds, dateWindows, latestQueryableDate, lookupWindows, ymd } from '../src/feishu/lookup.js';

// 2026-03-10 20:00 UTC = 2026-03-11 04:00 in Shanghai.
const NOW = Date.UTC(2026, 2, 10, 20, 0, 0);
const base = { nowMs: NOW, timeZone: 'Asia/Shanghai', includeCreateTime: false };

function days(from: number, to: number): number {
  const f = DateTime.fromFormat(String(from), 'yyyyMMdd', { zone: 'UTC' });
  const t = DateTime.fromFormat(String(to), 'yyyyMMdd', { zone: 'UTC' });
  return t.diff(f, 'days').days;
}

describe('lookupWindows', () => {
  it('caps at the earlier of the UTC and attendance-zone today, plus one', () => {
    expect(ymd(latestQueryableDate(NOW, 'Asia/Shanghai'))).toBe(20260311);
    expect(ymd(latestQueryableDate(NOW, 'UTC'))).toBe(20260311);
    expect(ymd(latestQueryableDate(Date.UTC(2026, 2, 10, 12), 'Asia/Shanghai'))).toBe(20260311);
  });

  it('searches one PeriodTime window around a past record', () => {
    expect(lookupWindows({ ...base, date: '20260302', startTime: '2026-03-02 09:00:00', endTime: '2026-03-03 18:00:00' })).toEqual([
      { type: 'PeriodTime', from: 20260301, to: 20260304 },
    ]);
  });

  it('covers date and item times when they differ (the docs example: date before the item)', () => {
    const [w] = lookupWindows({ ...base, date: '20260204', startTime: '2026-02-09 09:00:00', endTime: '2026-02-10 13:00:00' });
    expect(w).toEqual({ type: 'PeriodTime', from: 20260203, to: 20260211 });
  });

  it('clamps a long record to 29 days (both ends counted) and never past today + 1', () => {
    const [long] = lookupWindows({ ...base, date: '20260101', startTime: '2026-01-01 00:00:00', endTime: '2026-02-28 00:00:00' });
    expect(long!.from).toBe(20251231);
    // Inside both readings of "no more than 30 days": to − from ≤ 30, and ≤ 30 days counted inclusively.
    expect(days(long!.from, long!.to)).toBe(28);
    const ws = lookupWindows({ ...base, date: '20260310', startTime: '2026-03-10 09:00:00', endTime: '2026-03-20 18:00:00' });
    expect(ws[0]).toEqual({ type: 'PeriodTime', from: 20260309, to: 20260311 });
    // Part of it lies beyond the cap: CreateTime is searched as well.
    expect(ws.slice(1).every((w) => w.type === 'CreateTime')).toBe(true);
    expect(ws.length).toBeGreaterThan(1);
  });

  it('uses CreateTime for a record entirely in the future, starting from createdFrom', () => {
    const ws = lookupWindows({ ...base, date: '20260420', startTime: '2026-04-20 09:00:00', createdFrom: NOW });
    expect(ws).toEqual([{ type: 'CreateTime', from: 20260310, to: 20260311 }]);
  });

  it('slices long CreateTime searches into 29-day windows, newest first, all within the cap', () => {
    const ws = lookupWindows({ ...base, date: '20260301', includeCreateTime: true, createdFrom: NOW - 70 * 86_400_000 });
    const create = ws.filter((w) => w.type === 'CreateTime');
    expect(create.length).toBe(3);
    for (const w of create) {
      expect(days(w.from, w.to)).toBeLessThanOrEqual(28);
      expect(w.to).toBeLessThanOrEqual(20260311);
    }
    expect(create[0]!.to).toBe(20260311);
    expect(create[0]!.from).toBeGreaterThan(create[1]!.from);
  });
});

describe('dateWindows and chunkUserIds', () => {
  it('cover a range in consecutive 29-day windows, gap-free, clamped to today + 1', () => {
    const ws = dateWindows(20251201, 20260331, NOW, 'Asia/Shanghai');
    expect(ws[0]!.from).toBe(20251201);
    expect(ws.at(-1)!.to).toBe(20260311);
    for (const [i, w] of ws.entries()) {
      expect(days(w.from, w.to)).toBeLessThanOrEqual(28);
      if (i > 0) expect(days(ws[i - 1]!.to, w.from)).toBe(1);
    }
  });

  it('split user ids into groups of at most 50 without repeats', () => {
    const ids = Array.from({ length: 120 }, (_, i) => `E${i}`);
    const chunks = chunkUserIds([...ids, 'E1', 'E2']);
    expect(chunks.map((c) => c.length)).toEqual([50, 50, 20]);
    expect(chunks.flat()).toEqual(ids);
  });
});
