import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

/**
 * A fresh clone, with nothing beside it, must pass `npm test`: no file of the repository may
 * reach outside it (a sibling checkout, a path on the author's machine), and everything the
 * tests read must be committed.
 */
const ROOT = path.resolve('.');

function trackedFiles(): string[] {
  return execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter(Boolean);
}

const TEXT = /\.(ts|js|mjs|cjs|json|md|ya?ml|sh|snap)$|(^|\/)(run|\.gitignore)$/;

function textFiles(): string[] {
  return trackedFiles().filter((f) => TEXT.test(f) && f !== 'package-lock.json' && fs.existsSync(f));
}

function inside(p: string): boolean {
  const rel = path.relative(ROOT, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function lineOf(text: string, index: number): number {
  return text.slice(0, index).split('\n').length;
}

describe('the repository is self-contained', () => {
  it('names no directory outside it (a sibling checkout or the machine it was written on)', () => {
    // Built from pieces so that this file does not match itself.
    const outside = new RegExp(['\\.\\./+', 'shared\\b', '|', '/wor', 'k/', '|', '/home/[a-z]', '|', '/Users/[A-Za-z]'].join(''), 'g');
    const hits: string[] = [];
    for (const f of textFiles()) {
      const text = fs.readFileSync(f, 'utf8');
      for (const m of text.matchAll(outside)) hits.push(`${f}:${lineOf(text, m.index)}: ${m[0]}`);
    }
    expect(hits).toEqual([]);
  });

  it('has no relative path that leaves the repository', () => {
    // A quoted path or a Markdown link target starting with ../ resolves against the file's
    // directory (imports, links) or, for compiled code, against its place under dist/.
    const relative = /(?:['"`(])((?:\.\.\/)+[^'"`)\s${}*]*)/g;
    const hits: string[] = [];
    for (const f of textFiles()) {
      const text = fs.readFileSync(f, 'utf8');
      const dir = path.dirname(path.join(ROOT, f));
      const compiled = path.join(ROOT, 'dist', path.dirname(f));
      for (const m of text.matchAll(relative)) {
        const target = m[1]!;
        if (!inside(path.resolve(dir, target)) && !(/\.ts$/.test(f) && inside(path.resolve(compiled, target)))) {
          hits.push(`${f}:${lineOf(text, m.index)}: ${target}`);
        }
      }
    }
    expect(hits).toEqual([]);
  });

  it('reads only committed files: every path a test or tool opens from the working directory is tracked', () => {
    const tracked = new Set(trackedFiles());
    // fs calls with a literal path: Jest, the CLI and the tools run from the repository root.
    const opened = /fs\.(?:readFileSync|existsSync|readdirSync|statSync|createReadStream)\(\s*'([^']+)'/g;
    const checked: string[] = [];
    const problems: string[] = [];
    for (const f of textFiles().filter((f) => /\.ts$/.test(f) && !f.startsWith('src/'))) {
      const text = fs.readFileSync(f, 'utf8');
      for (const m of text.matchAll(opened)) {
        const p = m[1]!;
        if (path.isAbsolute(p)) continue; // /proc and the like: the machine's, not the repository's
        checked.push(p);
        const where = `${f}:${lineOf(text, m.index)}: ${p}`;
        if (!inside(path.resolve(ROOT, p))) problems.push(`${where} is outside the repository`);
        else if (!tracked.has(path.normalize(p)) && ![...tracked].some((t) => t.startsWith(path.normalize(p) + '/'))) problems.push(`${where} is not committed`);
      }
    }
    expect(problems).toEqual([]);
    // The check saw the files it is about (the Feishu doc's sample request and response).
    expect(checked).toEqual(expect.arrayContaining(['test/fixtures/user-approvals-create.request.json', 'test/fixtures/user-approvals-create.response.json']));
  });
});
