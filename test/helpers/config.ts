/** A small, complete raw configuration (as parsed from YAML) for tests to start from. */
export function baseRawConfig(): Record<string, any> {
  return {
    feishu: { app_id: 'cli_test', app_secret: 'test-secret-value-123', base_url: 'http://127.0.0.1:1' },
    source: { url: 'sqlite:./data/test-source.sqlite', time_zone: 'Asia/Shanghai' },
    kinds: {
      leave: {
        source: { table: 'leave_requests' },
        key: 'id',
        cursor: { mode: 'updated_at', column: 'updated_at' },
        status: { column: 'status', approved: ['approved'], revoked: ['cancelled', 'rejected'] },
        deleted: { column: 'deleted_at' },
        fields: {
          user_id: 'employee_no',
          start_time: 'start_at',
          end_time: 'end_at',
          type: 'leave_type_code',
          unit: { column: 'unit', map: { DAY: 1, HOUR: 2, HALF_DAY: 3 } },
          interval: { column: 'duration', unit: 'hours' },
          reason: { column: 'reason', default: '无' },
        },
        types: { ANNUAL: { uniq_id: 'ANNUAL', names: { ch: '年假', en: 'Annual leave' } } },
      },
    },
  };
}
