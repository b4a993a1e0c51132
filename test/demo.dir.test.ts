import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from './helpers/cli.js';

/*
 * `demo --dir D` replaces D/hr.sqlite*: only in a directory the demo made. `--dir data`
 * next to the SQLite example's sqlite:./data/hr.sqlite must leave that database alone.
 */
describe('demo --dir', () => {
  it('refuses a non-empty directory it did not make, touching nothing; reuses its own', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'demo-dir-'));
    try {
      const data = path.join(root, 'data');
      fs.mkdirSync(data);
      fs.writeFileSync(path.join(data, 'hr.sqlite'), 'the real HR database');
      fs.writeFileSync(path.join(data, 'hr.sqlite-wal'), 'its WAL');
      const refused = await runCli(['demo', '--dir', 'data'], { cwd: root, timeoutMs: 60_000 });
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/--dir .*data: the directory is not empty and was not made by the demo/);
      expect(fs.readFileSync(path.join(data, 'hr.sqlite'), 'utf8')).toBe('the real HR database');
      expect(fs.readFileSync(path.join(data, 'hr.sqlite-wal'), 'utf8')).toBe('its WAL');
      expect(fs.readdirSync(data).sort()).toEqual(['hr.sqlite', 'hr.sqlite-wal']);

      // A new directory: made and marked; a second run there replaces its own database.
      const first = await runCli(['demo', '--dir', 'demo'], { cwd: root, timeoutMs: 60_000 });
      expect(first.code).toBe(0);
      expect(fs.existsSync(path.join(root, 'demo', '.attendance-sync-demo'))).toBe(true);
      const second = await runCli(['demo', '--dir', 'demo'], { cwd: root, timeoutMs: 60_000 });
      expect(second.code).toBe(0);
      expect(second.stdout).toMatch(/Demo finished: everything synced/);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }, 120_000);
});
