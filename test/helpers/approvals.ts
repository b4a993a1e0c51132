/** A one-day annual leave for the client and pacing tests and benches: one item, its own idempotent_id. */
export function sampleLeave(userId: string, idempotentId: string, reason = 'test') {
  return {
    user_id: userId,
    date: '20260302',
    leaves: [
      {
        uniq_id: 'ANNUAL',
        unit: 1,
        interval: 28800,
        start_time: '2026-03-02 09:00:00',
        end_time: '2026-03-02 18:00:00',
        i18n_names: { ch: '年假' },
        default_locale: 'ch',
        reason,
        idempotent_id: idempotentId,
      },
    ],
  } as const;
}
