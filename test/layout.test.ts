import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/*
 * The layout rules of src/: no import circles (type-only imports count: a circle of types
 * is still a tangle to read), no file over 400 lines, and no branch on a dialect's name
 * outside src/db/dialect.ts (code asks the dialect's capabilities instead).
 */

const SRC = path.resolve('src');
const MAX_LINES = 400;
const DIALECT_FILE = path.join('src', 'db', 'dialect.ts');

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(full);
    return e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [full] : [];
  });
}

const files = sourceFiles(SRC).sort();
const rel = (f: string) => path.relative(process.cwd(), f);

/** The src/ files a file imports or re-exports (relative specifiers; `.js` written for `.ts`). */
function importsOf(file: string): string[] {
  const info = ts.preProcessFile(fs.readFileSync(file, 'utf8'), true, true);
  const out: string[] = [];
  for (const { fileName } of info.importedFiles) {
    if (!fileName.startsWith('.')) continue;
    const base = path.resolve(path.dirname(file), fileName);
    const candidates = [base.replace(/\.js$/, '.ts'), `${base}.ts`, path.join(base, 'index.ts')];
    const hit = candidates.find((c) => fs.existsSync(c) && fs.statSync(c).isFile());
    if (hit) out.push(hit);
  }
  return out;
}

/** Strongly connected components with more than one file (or a file importing itself): the circles. */
function circles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(scc.map(rel).sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

/** `=== 'pg'`, `'mysql' !==`, `client ===` and the like: a branch on the dialect's name. */
const DIALECT_BRANCH = /[!=]==\s*['"](?:pg|mysql|mysql2|sqlite|sqlite3|better-sqlite3)['"]|['"](?:pg|mysql|mysql2|sqlite|sqlite3)['"]\s*[!=]==|\bclient\s*[!=]==/;

describe('layout of src/', () => {
  it('finds the source files it judges', () => {
    expect(files.length).toBeGreaterThan(50);
    expect(files.map(rel)).toContain(DIALECT_FILE);
  });

  it('has no import circles', () => {
    const graph = new Map(files.map((f) => [f, importsOf(f)]));
    // The graph is real: the CLI entry reaches the pipeline through its imports.
    expect(graph.get(path.join(SRC, 'cli', 'main.ts'))?.length).toBeGreaterThan(0);
    const found = circles(graph).map((c) => c.join(' ⇄ '));
    expect(found).toEqual([]);
  });

  it('the CLI reads state/ only through its read models', () => {
    // Commands go through pipeline/ and source/; of state/ only what is meant for the CLI.
    const READ_MODELS = ['src/state/status.ts', 'src/state/overview.ts'];
    const cli = files.filter((f) => rel(f).startsWith(path.join('src', 'cli') + path.sep));
    expect(cli.length).toBeGreaterThan(10);
    const offenders = cli.flatMap((f) =>
      importsOf(f)
        .map(rel)
        .filter((to) => to.startsWith(path.join('src', 'state') + path.sep) && !READ_MODELS.includes(to.split(path.sep).join('/')))
        .map((to) => `${rel(f)} → ${to}`),
    );
    expect(offenders).toEqual([]);
    // The check sees the CLI's imports of state/ at all (status.ts reads its read model).
    expect(cli.some((f) => importsOf(f).map(rel).includes(path.join('src', 'state', 'status.ts')))).toBe(true);
  });

  it(`has no file over ${MAX_LINES} lines`, () => {
    const over = files
      .map((f) => ({ file: rel(f), lines: fs.readFileSync(f, 'utf8').split('\n').length - 1 }))
      .filter((f) => f.lines > MAX_LINES)
      .map((f) => `${f.file}: ${f.lines} lines`);
    expect(over).toEqual([]);
  });

  it('branches on a dialect name only in src/db/dialect.ts', () => {
    const offenders = files
      .filter((f) => rel(f) !== DIALECT_FILE)
      .flatMap((f) =>
        fs
          .readFileSync(f, 'utf8')
          .split('\n')
          .flatMap((line, i) => (DIALECT_BRANCH.test(line) ? [`${rel(f)}:${i + 1}: ${line.trim()}`] : [])),
      );
    expect(offenders).toEqual([]);
  });

  it('the checks catch what they look for', () => {
    const a = '/x/a.ts';
    const b = '/x/b.ts';
    expect(circles(new Map([[a, [b]], [b, [a]]]))).toHaveLength(1);
    expect(circles(new Map([[a, [b]], [b, []]]))).toHaveLength(0);
    expect(DIALECT_BRANCH.test("if (dialect === 'pg') {")).toBe(true);
    expect(DIALECT_BRANCH.test("d.name !== 'sqlite'")).toBe(true);
    expect(DIALECT_BRANCH.test('if (client === x)')).toBe(true);
    expect(DIALECT_BRANCH.test("const name: DialectName = 'pg';")).toBe(false);
  });
});
