import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../errors.js';

/** Left in a directory the demo made, so a later run may replace its own files there. */
export const DEMO_MARKER = '.attendance-sync-demo';

/**
 * The demo replaces hr.sqlite* in its directory. It does so only in a directory it made
 * itself (new or empty when it first ran, marked since): `--dir data` must not delete the
 * data/hr.sqlite an operator's SQLite configuration points at.
 */
export function prepareDemoDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const entries = fs.readdirSync(dir);
  if (entries.length > 0 && !entries.includes(DEMO_MARKER)) {
    throw new ConfigError(
      [`--dir ${dir}: the directory is not empty and was not made by the demo (no ${DEMO_MARKER}); the demo replaces hr.sqlite there, so give it a new or empty directory`],
      'refusing to use the demo directory',
    );
  }
  fs.writeFileSync(path.join(dir, DEMO_MARKER), 'Made by `npx attendance-sync demo`: it may replace hr.sqlite* here.\n');
  for (const f of entries) if (f.startsWith('hr.sqlite')) fs.rmSync(path.join(dir, f));
}
