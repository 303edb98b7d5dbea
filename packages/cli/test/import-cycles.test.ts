import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(import.meta.dirname, '../src');

// Static imports and re-exports that stay at run time (`import type` is erased), and import().
const IMPORT =
  /^\s*(?:import|export)\s+(?!type\s)(?:[^'";]*?\sfrom\s+)?['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/gm;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

/** Each source file's relative imports that are loaded at run time, as source paths. */
function importGraph(root: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sources(root)) {
    const text = readFileSync(file, 'utf8');
    const targets = [...text.matchAll(IMPORT)].map((m) =>
      resolve(dirname(file), (m[1] ?? m[2]) as string).replace(/\.js$/, '.ts'),
    );
    graph.set(file, targets);
  }
  return graph;
}

/** Every import circle of the graph, each as the files around it (relative to `root`). */
function circles(graph: Map<string, string[]>, root: string): string[][] {
  const found: string[][] = [];
  const done = new Set<string>();
  const path: string[] = [];
  const visit = (file: string) => {
    const at = path.indexOf(file);
    if (at >= 0) {
      found.push([...path.slice(at), file].map((f) => relative(root, f)));
      return;
    }
    if (done.has(file)) return;
    path.push(file);
    for (const next of graph.get(file) ?? []) visit(next);
    path.pop();
    done.add(file);
  };
  for (const file of graph.keys()) visit(file);
  return found;
}

describe('the CLI source', () => {
  it('reads the imports it checks: static, re-exports and import(), not import type', () => {
    const graph = importGraph(SRC);
    const main = graph.get(join(SRC, 'main.ts')) ?? [];
    expect(main).toContain(join(SRC, 'registry.ts'));
    expect(graph.get(join(SRC, 'registry.ts'))).toContain(join(SRC, 'commands/mcp.ts'));
    expect(graph.get(join(SRC, 'index.ts'))).toEqual([join(SRC, 'main.ts')]);
  });

  it('has no import circles, dynamic imports included', () => {
    expect(circles(importGraph(SRC), SRC)).toEqual([]);
  });
});
