import fs from 'node:fs';
import path from 'node:path';

/** Where several configurations live, one per sync (ecosystem.config.js reads the same). */
export const DEFAULT_CONFIG_DIR = 'config';

export interface ConfigFile {
  /** The file's name without `.yaml`: the pm2 app's name. */
  readonly name: string;
  readonly file: string;
}

/**
 * The configurations of a directory: every `*.yaml` except the examples (`*.example.*.yaml`)
 * and hidden files, by name. ecosystem.config.js applies the same rule (a test holds them
 * together): one pm2 app per file, named after it.
 */
export function configFiles(dir: string): ConfigFile[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.yaml') && !/\.example\./.test(e.name) && !e.name.startsWith('.'))
    .map((e) => ({ name: e.name.slice(0, -'.yaml'.length), file: path.join(dir, e.name) }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** `--config-dir`, else $ATTENDANCE_SYNC_CONFIG_DIR, else config/. */
export function configDir(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(explicit ?? (env.ATTENDANCE_SYNC_CONFIG_DIR || DEFAULT_CONFIG_DIR));
}
