import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const packageDir = resolve(import.meta.dirname, '..');
const packagesDir = resolve(packageDir, '..');

/** The README's `js` blocks, each with the `text` block after it that shows what it prints. */
async function readmeExamples(): Promise<Array<{ code: string; prints: string | undefined }>> {
  const readme = await readFile(join(packageDir, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```(\w*)\n([\s\S]*?)```/g)].map((m) => ({
    lang: m[1],
    body: m[2] as string,
  }));
  const examples: Array<{ code: string; prints: string | undefined }> = [];
  blocks.forEach((block, i) => {
    if (block.lang !== 'js') return;
    const next = blocks[i + 1];
    examples.push({ code: block.body, prints: next?.lang === 'text' ? next.body : undefined });
  });
  return examples;
}

// What a user does: `npm install @exec-kernel/ai-sdk @exec-kernel/budget ai@6` in an empty
// project, from the tarballs `pnpm publish` would upload, then runs the README's examples.
describe('@exec-kernel/ai-sdk installed as its README says', () => {
  let dir = '';
  let project = '';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'exec-kernel-ai-sdk-pack-'));
    const tarballs: string[] = [];
    for (const name of ['core', 'budget', 'ai-sdk']) {
      const { stdout } = await run('pnpm', ['pack', '--pack-destination', dir], {
        cwd: join(packagesDir, name),
      });
      tarballs.push(resolve(dir, stdout.trim().split('\n').at(-1) as string));
    }
    project = join(dir, 'project');
    await run('mkdir', ['-p', project]);
    await writeFile(
      join(project, 'package.json'),
      JSON.stringify({ name: 'consumer', private: true }),
    );
    await run(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs, 'ai@6'],
      { cwd: project },
    );
  }, 180_000);

  afterAll(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('installs no optional peer: neither the loop guard nor the service client', async () => {
    expect(await readdir(join(project, 'node_modules', '@exec-kernel'))).toEqual([
      'ai-sdk',
      'budget',
      'core',
    ]);
    const ai = JSON.parse(await readFile(join(project, 'node_modules/ai/package.json'), 'utf8'));
    expect(ai.version).toMatch(/^6\./);
    const { stdout } = await run(
      process.execPath,
      ['-e', "console.log(typeof require('@exec-kernel/ai-sdk').budgetMiddleware)"],
      { cwd: project },
    );
    expect(stdout.trim()).toBe('function');
  });

  it('runs the local-tracker examples as pasted and prints what the README shows', async () => {
    const examples = (await readmeExamples()).filter(
      (e) => !e.code.includes('@exec-kernel/coordination'),
    );
    expect(examples.length).toBeGreaterThanOrEqual(2);
    for (const [i, example] of examples.entries()) {
      const file = join(project, `example-${i}.mjs`);
      await writeFile(file, example.code);
      const { stdout } = await run(process.execPath, [file], { cwd: project });
      if (example.prints !== undefined) expect(stdout).toBe(example.prints);
    }
  });
});

// The shared-budget example needs the coordination service, whose SQLite driver builds natively on
// install; it runs here against the workspace's build of the same packages.
describe('the README example of a budget shared on the coordination service', () => {
  it('prints what the README shows', async () => {
    const example = (await readmeExamples()).find((e) =>
      e.code.includes('@exec-kernel/coordination'),
    );
    expect(example?.prints).toBeDefined();
    const file = join(packageDir, `readme-shared-${process.pid}.mjs`);
    await writeFile(file, example?.code ?? '');
    try {
      const { stdout } = await run(process.execPath, [file], { cwd: packageDir });
      expect(stdout).toBe(example?.prints);
    } finally {
      await rm(file, { force: true });
    }
  }, 60_000);
});
