/**
 * pm2 process file: `pm2 start ecosystem.config.js --env production`.
 *
 * - fork mode, one instance: the worker keeps a leader lock in the state database, so a
 *   second instance (a restart overlap, another host) waits instead of sending twice.
 * - pm2 stops a process with SIGINT, then SIGKILL after kill_timeout. The worker's own
 *   shutdown deadline (sync.shutdown_timeout_ms, default 8 s) is kept below kill_timeout.
 * - wait_ready: pm2 counts the process as online once it sends 'ready' (after the config
 *   is valid and the databases answer). A broken config ends the process with exit code 2,
 *   which stop_exit_codes keeps from restarting: pm2 shows it stopped, not online.
 * - No restart_delay / exp_backoff_restart_delay: with either set, pm2 (up to 7.x) marks
 *   every exit "waiting restart", even one it will not restart (exit code 2, or too many
 *   unstable restarts), so a broken config would never show as stopped or errored. A crash
 *   loop still ends: min_uptime and max_restarts turn it into "errored".
 *
 * Several HR databases or Feishu tenants (one sync per subsidiary): put one configuration per
 * sync in a directory — ATTENDANCE_SYNC_CONFIG_DIR, default config/; every *.yaml there
 * except the examples (*.example.*.yaml) — and this file builds one pm2 app per file, named
 * after it (config/acme.yaml → app "acme", logs/acme.out.log). Each app runs
 * `attendance-sync --config <file> run` with its own state tables (give each file its own
 * state database or state.table_prefix: the leader lock is named after the prefix) and its
 * own metrics port. With more than one file, the global overrides (FEISHU_APP_ID,
 * FEISHU_APP_SECRET, FEISHU_BASE_URL, SOURCE_DATABASE_URL, STATE_DATABASE_URL) are blanked
 * for every app: one stray variable would otherwise point every sync at one tenant. Each
 * file names its own variables instead (${ACME_FEISHU_APP_SECRET}). `attendance-sync status
 * --all` summarises every configuration of the directory. ATTENDANCE_SYNC_CONFIG set: one
 * app for that file, as before.
 *
 * The package is ESM; pm2 loads this file with require(), which Node ≥ 20.19 resolves to
 * the module's named exports, hence `export const apps`.
 */
import fs from 'node:fs';
import path from 'node:path';

/** The five variables that override a file's values (src/config/load.ts, ENV_OVERRIDES). */
const OVERRIDES = ['FEISHU_APP_ID', 'FEISHU_APP_SECRET', 'FEISHU_BASE_URL', 'SOURCE_DATABASE_URL', 'STATE_DATABASE_URL'];

/** The configuration files of a directory, as `status --all` reads them (src/config/configDir.ts). */
export function configFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.yaml') && !/\.example\./.test(e.name) && !e.name.startsWith('.'))
    .map((e) => ({ name: e.name.slice(0, -'.yaml'.length), file: path.join(dir, e.name) }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function app(name, args, logName, env) {
  return {
    name,
    script: './dist/src/cli/index.js',
    args,
    exec_mode: 'fork',
    // V8 grows its heap lazily when the process allocates fast (a backlog drains at
    // thousands of records per second); the worker's live set stays under 50 MB. A small
    // young generation and a cap keep the footprint flat: ~110 MB RSS instead of ~215 MB at
    // the same speed (npm run bench, section rss).
    node_args: ['--max-old-space-size=192', '--max-semi-space-size=4'],
    instances: 1,
    autorestart: true,
    wait_ready: true,
    listen_timeout: 30000,
    kill_timeout: 12000,
    min_uptime: 5000,
    max_restarts: 10,
    max_memory_restart: '400M',
    // Exit code 2 means a configuration error: restarting cannot fix it.
    stop_exit_codes: [2],
    out_file: `./logs/${logName}.out.log`,
    error_file: `./logs/${logName}.err.log`,
    merge_logs: true,
    time: false,
    env: {
      ...env,
      NODE_ENV: 'development',
      TZ: 'UTC',
    },
    env_production: {
      ...env,
      NODE_ENV: 'production',
      TZ: 'UTC',
    },
  };
}

/** One app per configuration file (see above); one app named attendance-sync otherwise. */
export function buildApps(env = process.env) {
  if (env.ATTENDANCE_SYNC_CONFIG) return [app('attendance-sync', 'run', 'attendance-sync', {})];
  const files = configFiles(path.resolve(env.ATTENDANCE_SYNC_CONFIG_DIR || 'config'));
  if (files.length === 0) return [app('attendance-sync', 'run', 'attendance-sync', {})];
  const blank = files.length > 1 ? Object.fromEntries(OVERRIDES.map((v) => [v, ''])) : {};
  return files.map((f) => app(f.name, ['--config', f.file, 'run'], f.name, blank));
}

export const apps = buildApps();

export default { apps };
