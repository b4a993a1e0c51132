import { DateTime } from 'luxon';
import { withSampleWorld, type SampleWorld } from './sampleWorld.js';
import type { EmulatorOptions } from '../../src/emulator/index.js';
import type { SeedOptions } from '../../src/sample/seed.js';

/** A SQLite sample HR database, an emulator and the SQLite example configuration (leave only), driven through the CLI. */
export type LeaveWorld = SampleWorld;

export function leaveWorld(label: string, o: { sample: SeedOptions; emulator?: Partial<EmulatorOptions>; tweak?: (raw: any) => void }): Promise<LeaveWorld> {
  return withSampleWorld('sqlite', label, {
    sample: { overtime: 0, trips: 0, outs: 0, now: DateTime.utc().minus({ hours: 2 }), ...o.sample },
    emulator: { strict: true, rateLimit: 500, ...o.emulator },
    cliTimeoutMs: 90_000,
    tweak: (raw) => {
      raw.feishu.retry_base_ms = 20;
      raw.feishu.retry_max_ms = 100;
      raw.feishu.timeout_ms = 3_000;
      raw.log = { level: 'info', format: 'json' };
      for (const k of ['overtime', 'trip', 'out']) delete raw.kinds[k];
      o.tweak?.(raw);
    },
  });
}
