import fs from 'node:fs';
import { renderConfigReference } from '../src/config/reference.js';

describe('configuration reference', () => {
  it('docs/configuration.md is exactly what the schema renders (regenerate: attendance-sync config-reference > docs/configuration.md)', () => {
    const committed = fs.readFileSync('docs/configuration.md', 'utf8');
    expect(committed).toBe(renderConfigReference());
  });

  it('lists every key of every kind with type, default and meaning', () => {
    const text = renderConfigReference();
    for (const key of [
      'feishu.app_secret',
      'source.time_zone',
      'state.table_prefix',
      'sync.lookback_seconds',
      'kinds.leave.fields.interval',
      'kinds.overtime.fields.category',
      'kinds.trip.fields.approve_pass_time',
      'kinds.out.types.<code>.uniq_id',
    ]) {
      expect(text).toMatch(new RegExp(`\\| \`${key.replace(/[.<>]/g, (c) => `\\${c}`)}\` \\| [^|]+ \\| [^|]+ \\| \\S`));
    }
  });
});
