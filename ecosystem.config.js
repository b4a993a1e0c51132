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
 * The package is ESM; pm2 loads this file with require(), which Node ≥ 20.19 resolves to
 * the module's named exports, hence `export const apps`.
 */
export const apps = [
  {
    name: 'attendance-sync',
    script: './dist/src/cli/index.js',
    args: 'run',
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
    out_file: './logs/attendance-sync.out.log',
    error_file: './logs/attendance-sync.err.log',
    merge_logs: true,
    time: false,
    env: {
      NODE_ENV: 'development',
      TZ: 'UTC',
    },
    env_production: {
      NODE_ENV: 'production',
      TZ: 'UTC',
    },
  },
];

export default { apps };
