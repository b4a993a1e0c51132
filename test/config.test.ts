import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { resolveConfig, loadConfig, findConfigPath, resolveStateTarget } from '../src/config/load.js';
import { ConfigError } from '../src/errors.js';
import { baseRawConfig } from './helpers/config.js';
import { runCli } from './helpers/cli.js';

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  throw new Error('expected a ConfigError');
}

const noEnv = {} as NodeJS.ProcessEnv;

describe('configuration: valid files', () => {
  it('fills defaults and defaults the state DB to the source DB', () => {
    const cfg = resolveConfig(baseRawConfig(), { env: noEnv });
    expect(cfg.feishu.rate_limit).toBe(50);
    expect(cfg.feishu.employee_type).toBe('employee_id');
    expect(cfg.feishu.time_zone).toBe('Asia/Shanghai');
    expect(cfg.state.url).toBe(cfg.source.url);
    expect(cfg.state.table_prefix).toBe('attendance_sync_');
    expect(cfg.sync.page_size).toBe(500);
    expect(cfg.kinds.leave?.enabled).toBe(true);
    expect(cfg.kinds.leave?.types?.ANNUAL?.default_locale).toBe('ch');
    expect(cfg.kinds.overtime).toBeUndefined();
  });

  it('lets the environment override secrets and URLs', () => {
    const cfg = resolveConfig(baseRawConfig(), {
      env: {
        FEISHU_APP_ID: 'cli_env',
        FEISHU_APP_SECRET: 'env-secret-xyz',
        FEISHU_BASE_URL: 'http://127.0.0.1:9999',
        SOURCE_DATABASE_URL: 'postgres://hr@127.0.0.1/hr',
        STATE_DATABASE_URL: 'mysql://root@127.0.0.1/state',
      },
    });
    expect(cfg.feishu).toMatchObject({ app_id: 'cli_env', app_secret: 'env-secret-xyz', base_url: 'http://127.0.0.1:9999' });
    expect(cfg.source.url).toBe('postgres://hr@127.0.0.1/hr');
    expect(cfg.state.url).toBe('mysql://root@127.0.0.1/state');
  });

  it('interpolates ${VAR} and ${VAR:-default}', () => {
    const raw = baseRawConfig();
    raw.feishu.app_secret = '${MY_SECRET}';
    raw.source.url = 'sqlite:${DATA_DIR:-./data}/hr.sqlite';
    const cfg = resolveConfig(raw, { env: { MY_SECRET: 'from-env-1234' } });
    expect(cfg.feishu.app_secret).toBe('from-env-1234');
    expect(cfg.source.url).toBe('sqlite:./data/hr.sqlite');
  });

  it('loads YAML from --config, then $ATTENDANCE_SYNC_CONFIG, then the default path', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-'));
    const file = path.join(dir, 'c.yaml');
    fs.writeFileSync(file, YAML.stringify(baseRawConfig()));
    expect(loadConfig({ configPath: file, env: noEnv }).configPath).toBe(file);
    expect(findConfigPath({ env: { ATTENDANCE_SYNC_CONFIG: file } }).path).toBe(file);
    expect(findConfigPath({ env: noEnv }).path).toBe(path.resolve('config/attendance-sync.yaml'));
  });
});

describe('configuration: every kind of bad input names its path', () => {
  const cases: Array<[string, (raw: Record<string, any>) => void, RegExp]> = [
    ['missing required field', (r) => delete r.kinds.leave.fields.start_time, /^kinds\.leave\.fields\.start_time: required$/],
    ['misspelled key', (r) => (r.kinds.leave.feilds = {}), /^kinds\.leave\.feilds: unknown key$/],
    ['misspelled top-level key', (r) => (r.fieshu = {}), /^fieshu: unknown key$/],
    ['wrong type', (r) => (r.feishu.rate_limit = 'fast'), /^feishu\.rate_limit: expected number/],
    ['rate limit out of range', (r) => (r.feishu.rate_limit = 0), /^feishu\.rate_limit: /],
    ['bad enum', (r) => (r.feishu.employee_type = 'email'), /^feishu\.employee_type: must be one of "employee_id", "employee_no", "open_id"$/],
    ['bad time zone', (r) => (r.source.time_zone = 'Asia/Beijing'), /^source\.time_zone: not a known IANA time zone/],
    ['bad cron', (r) => (r.sync = { schedule: 'every minute' }), /^sync\.schedule: not a valid cron expression/],
    ['bad database scheme', (r) => (r.source.url = 'oracle://x/y'), /^source\.url: unsupported scheme "oracle:"/],
    ['sqlite without path', (r) => (r.source.url = 'sqlite:'), /^source\.url: sqlite URL needs a file path/],
    ['both table and query', (r) => (r.kinds.leave.source.query = 'SELECT 1'), /^kinds\.leave\.source: set exactly one of `table` or `query`$/],
    ['neither table nor query', (r) => (r.kinds.leave.source = {}), /^kinds\.leave\.source: set exactly one of `table` or `query`$/],
    ['no kinds', (r) => (r.kinds = {}), /^kinds: configure at least one of leave, overtime, trip, out$/],
    ['unknown kind', (r) => (r.kinds.holiday = {}), /^kinds\.holiday: unknown key$/],
    ['uniq_id too long', (r) => (r.kinds.leave.types.ANNUAL.uniq_id = 'ANNUAL-LEAVE-2026'), /^kinds\.leave\.types\.ANNUAL\.uniq_id: must be 1–13 ASCII/],
    ['default locale name missing', (r) => (r.kinds.leave.types.ANNUAL.default_locale = 'ja'), /^kinds\.leave\.types\.ANNUAL\.names: names must include the default_locale name$/],
    ['field spec with neither column nor value', (r) => (r.kinds.leave.fields.reason = { default: 'x' }), /^kinds\.leave\.fields\.reason: needs `column` or `value`$/],
    ['field spec with unknown key', (r) => (r.kinds.leave.fields.reason = { colum: 'reason' }), /^kinds\.leave\.fields\.reason\.colum: unknown key$/],
    ['field spec of wrong type', (r) => (r.kinds.leave.fields.user_id = 42), /^kinds\.leave\.fields\.user_id: expected a column name or an object/],
    ['column name with SQL in it', (r) => (r.kinds.leave.key = 'id; DROP TABLE x'), /^kinds\.leave\.key: must be a plain column name/],
    ['updated_at cursor without column', (r) => (r.kinds.leave.cursor = { mode: 'updated_at' }), /^kinds\.leave\.cursor\.column: mode updated_at needs `column`$/],
    ['bad table prefix', (r) => (r.state = { table_prefix: 'Sync-' }), /^state\.table_prefix: /],
    ['unset environment variable', (r) => (r.feishu.app_secret = '${NOT_SET_ANYWHERE}'), /^feishu\.app_secret: environment variable NOT_SET_ANYWHERE is not set$/],
    ['missing app secret', (r) => delete r.feishu.app_secret, /^feishu\.app_secret: required$/],
  ];

  it.each(cases)('%s', (_name, mutate, expected) => {
    const raw = baseRawConfig();
    mutate(raw);
    const problems = problemsOf(() => resolveConfig(raw, { env: noEnv }));
    expect(problems.some((p) => expected.test(p))).toBe(true);
  });

  it('reports every problem at once, not only the first', () => {
    const raw = baseRawConfig();
    delete raw.kinds.leave.fields.start_time;
    raw.kinds.leave.feilds = {};
    raw.feishu.rate_limit = -1;
    const problems = problemsOf(() => resolveConfig(raw, { env: noEnv }));
    expect(problems).toEqual(expect.arrayContaining(['kinds.leave.fields.start_time: required', 'kinds.leave.feilds: unknown key']));
    expect(problems.length).toBeGreaterThanOrEqual(3);
  });

  it('names the file when it is missing or not YAML, and never includes a secret', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-'));
    expect(problemsOf(() => loadConfig({ configPath: path.join(dir, 'nope.yaml'), env: noEnv }))[0]).toMatch(/nope\.yaml: file not found/);
    const bad = path.join(dir, 'bad.yaml');
    fs.writeFileSync(bad, 'feishu:\n  app_secret: "super-secret-9876"\n  app_id: [unclosed\n');
    const problems = problemsOf(() => loadConfig({ configPath: bad, env: noEnv }));
    expect(problems[0]).toMatch(/bad\.yaml/);
    expect(problems.join('\n')).not.toContain('super-secret-9876');
  });

  it('refuses a YAML alias bomb as a configuration error (exit 2), without expanding it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-'));
    const bomb = path.join(dir, 'bomb.yaml');
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
    for (const [prev, name] of [['a', 'b'], ['b', 'c'], ['c', 'd'], ['d', 'e'], ['e', 'f'], ['f', 'g'], ['g', 'h']]) lines.push(`${name}: &${name} [${Array(10).fill(`*${prev}`).join(',')}]`);
    fs.writeFileSync(bomb, lines.join('\n') + '\n');
    expect(problemsOf(() => loadConfig({ configPath: bomb, env: noEnv }))[0]).toMatch(/bomb\.yaml: .*alias/i);
    const res = await runCli(['--config', bomb, 'check-config']);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/invalid YAML/);
    const migrate = await runCli(['--config', bomb, 'migrate']);
    expect(migrate.code).toBe(2);
  });
});

describe('resolveStateTarget (what migrate needs)', () => {
  it('works with no config file from STATE_DATABASE_URL alone', async () => {
    const cwd = process.cwd();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-'));
    process.chdir(dir);
    try {
      await expect(resolveStateTarget({ env: { STATE_DATABASE_URL: 'sqlite:./s.sqlite' } })).resolves.toEqual({
        url: 'sqlite:./s.sqlite',
        tablePrefix: 'attendance_sync_',
      });
      await expect(resolveStateTarget({ env: {} })).rejects.toThrow(/state\.url: required/);
    } finally {
      process.chdir(cwd);
    }
  });

  it('reads state and source from an incomplete config file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-'));
    const file = path.join(dir, 'c.yaml');
    fs.writeFileSync(file, 'source:\n  url: sqlite:./hr.sqlite\nstate:\n  table_prefix: fas_\n');
    await expect(resolveStateTarget({ configPath: file, env: {} })).resolves.toEqual({ url: 'sqlite:./hr.sqlite', tablePrefix: 'fas_' });
  });
});
