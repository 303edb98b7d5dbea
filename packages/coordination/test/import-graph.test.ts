import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// The source import graph of the service and its client: the client never reaches the server,
// and no module is in a circle of imports (type-only imports are erased, so they are left out).

const PACKAGES = resolve(import.meta.dirname, '..', '..');
const SERVER = join(PACKAGES, 'coordination', 'src');
const CLIENT = join(PACKAGES, 'coordination-client', 'src');

interface Edge {
  from: string;
  to: string;
  typeOnly: boolean;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
    .map((f) => join(dir, f));
}

const IMPORT = /^\s*(import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/gm;

/** Every import and re-export of `file`: relative ones resolved to files, packages by name. */
function importsOf(file: string, text: string = readFileSync(file, 'utf8')): Edge[] {
  const edges: Edge[] = [];
  for (const match of text.matchAll(IMPORT)) {
    const [, , type, spec = ''] = match;
    const to = spec.startsWith('.') ? resolve(dirname(file), spec.replace(/\.js$/, '.ts')) : spec;
    edges.push({ from: file, to, typeOnly: type !== undefined });
  }
  return edges;
}

/** The circles among `files` through value imports, each as its files in order. */
function circles(files: string[]): string[][] {
  const graph = new Map(
    files.map((f) => [f, importsOf(f).filter((e) => !e.typeOnly && files.includes(e.to))]),
  );
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (file: string) => {
    state.set(file, 'open');
    path.push(file);
    for (const { to } of graph.get(file) ?? []) {
      if (state.get(to) === 'open') found.push(path.slice(path.indexOf(to)));
      else if (state.get(to) === undefined) visit(to);
    }
    path.pop();
    state.set(file, 'done');
  };
  for (const file of files) if (state.get(file) === undefined) visit(file);
  return found.map((c) => c.map((f) => relative(PACKAGES, f)));
}

/** The files `entry` loads, itself included, following relative imports of every kind. */
function reach(entry: string): string[] {
  const seen = new Set<string>();
  const walk = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const { to } of importsOf(file)) if (to.startsWith('/')) walk(to);
  };
  walk(entry);
  return [...seen];
}

describe('the import graph', () => {
  it('finds imports, re-exports and type-only ones (so the checks below can fail)', () => {
    const text = [
      "import { a } from './a.js';",
      "import type { B } from '../b.js';",
      "export { c } from '@exec-kernel/coordination';",
      "export type * from './d.js';",
    ].join('\n');
    expect(importsOf(join(SERVER, 'x.ts'), text)).toEqual([
      { from: join(SERVER, 'x.ts'), to: join(SERVER, 'a.ts'), typeOnly: false },
      { from: join(SERVER, 'x.ts'), to: join(PACKAGES, 'coordination', 'b.ts'), typeOnly: true },
      { from: join(SERVER, 'x.ts'), to: '@exec-kernel/coordination', typeOnly: false },
      { from: join(SERVER, 'x.ts'), to: join(SERVER, 'd.ts'), typeOnly: true },
    ]);
  });

  it('keeps the client package off the server: no import of it, no path out of the package', () => {
    const offending = sources(CLIENT)
      .flatMap((f) => importsOf(f))
      .filter(
        (e) =>
          e.to === '@exec-kernel/coordination' ||
          e.to.startsWith('@exec-kernel/coordination/') ||
          (e.to.startsWith('/') && !e.to.startsWith(`${CLIENT}/`)),
      )
      .map((e) => `${relative(PACKAGES, e.from)} -> ${e.to}`);
    expect(offending).toEqual([]);
  });

  it("keeps coordination's client entry off the service, its storage and http/", () => {
    const loaded = reach(join(SERVER, 'client-entry.ts')).map((f) => relative(SERVER, f));
    expect(loaded).toEqual(['client-entry.ts']);
  });

  it('has no circle of imports in either package', () => {
    expect(circles(sources(CLIENT))).toEqual([]);
    expect(circles(sources(SERVER))).toEqual([]);
  });
});
