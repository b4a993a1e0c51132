import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { buildProgram } from '../src/cli/main.js';

const exec = promisify(execFile);

/**
 * The production install the README describes: `npm pack` (which builds dist/) on a machine
 * with the checkout, then on the server the unpacked tarball installed without dev
 * dependencies, where TypeScript is absent. Every command then runs through npx, as written.
 *
 * Dependencies' own install scripts are left out (--ignore-scripts): without a reachable
 * prebuilt binary better-sqlite3 compiles for minutes, and none of the commands run here loads
 * it. The package's own install-time script (prepare) is run by itself, as npm would run it.
 * Takes about a minute (mostly the build inside npm pack).
 */
describe('production install from the packed tarball', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pack-'));
  });
  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('installs with --omit=dev (no TypeScript there) and runs attendance-sync and pm2 through npx', async () => {
    const packed = await exec('npm', ['pack', '--json', '--pack-destination', dir], { maxBuffer: 64 * 1024 * 1024 });
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const shipped = info!.files.map((f) => f.path);
    expect(shipped).toEqual(expect.arrayContaining(['dist/src/cli/index.js', 'ecosystem.config.js', 'config/attendance-sync.example.sqlite.yaml', 'package.json']));
    expect(shipped.filter((f) => f.startsWith('src/') || f.startsWith('test/'))).toEqual([]);

    await exec('tar', ['xzf', path.join(dir, info!.filename), '-C', dir]);
    const app = path.join(dir, 'package');
    const env = { ...process.env, NODE_ENV: 'production' };
    await exec('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts'], { cwd: app, env, maxBuffer: 64 * 1024 * 1024 });
    expect(fs.existsSync(path.join(app, 'node_modules/typescript'))).toBe(false);
    expect(fs.existsSync(path.join(app, 'node_modules/jest'))).toBe(false);

    // What failed with `tsc: not found` (exit 127): with dist/ shipped, prepare has nothing to do.
    const prepared = await exec('npm', ['run', 'prepare'], { cwd: app, env });
    expect(prepared.stderr).not.toMatch(/not found|error/i);

    // npx and pm2 get homes of their own: the test leaves nothing in the user's.
    const npxEnv = { ...env, npm_config_cache: path.join(dir, 'npm-cache'), PM2_HOME: path.join(dir, 'pm2') };
    const npx = (...args: string[]) => exec('npx', args, { cwd: app, env: npxEnv, maxBuffer: 16 * 1024 * 1024 });
    const help = await npx('attendance-sync', '--help');
    expect(help.stdout).toMatch(/^Usage: attendance-sync/m);
    expect(help.stdout).toMatch(/check-config/);
    const reference = await npx('attendance-sync', 'config-reference');
    expect(reference.stdout).toBe(fs.readFileSync('docs/configuration.md', 'utf8'));
    // pm2 ships with the package (a dependency), so `npx pm2` needs no global install.
    try {
      const pm2 = await npx('pm2', '--version');
      expect(pm2.stdout.trim()).toMatch(/\n\d+\.\d+\.\d+$/);
    } finally {
      await npx('pm2', 'kill').catch(() => undefined); // --version started its daemon
    }
  }, 240_000);

  it('the README reaches the CLI and pm2 through npx only, and names only commands that exist', () => {
    const readme = fs.readFileSync('README.md', 'utf8');
    // Inline code and code blocks: a command line starting with the bare name is not on PATH.
    const code = [...readme.matchAll(/```[a-z]*\n([\s\S]*?)```|``([^`][\s\S]*?)``|`([^`]+)`/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
    const bare = code.flatMap((c) => c.split('\n')).filter((l) => /(^|[;&|(]\s*|=\S*\s+)(attendance-sync|pm2)\s/.test(l.replace(/#.*$/, '')));
    expect(bare).toEqual([]);
    const names = new Set(buildProgram().commands.map((c) => c.name()));
    const used = [...readme.matchAll(/npx attendance-sync ([a-z][a-z-]*)/g)].map((m) => m[1]!);
    expect(used.length).toBeGreaterThan(5);
    expect(used.filter((n) => !names.has(n))).toEqual([]);
  });
});
