import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const packagesDir = resolve(import.meta.dirname, '../..');

// What a user does: `npm install @exec-kernel/loop` into a project that has nothing else.
// The tarballs are the ones `pnpm publish` would upload (workspace: ranges rewritten).
describe('@exec-kernel/loop installed alone from its tarballs', () => {
  let dir = '';
  let project = '';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'exec-kernel-pack-'));
    const tarballs: string[] = [];
    for (const name of ['core', 'loop']) {
      const { stdout } = await run('pnpm', ['pack', '--pack-destination', dir], {
        cwd: join(packagesDir, name),
      });
      const tarball = stdout.trim().split('\n').at(-1) as string;
      tarballs.push(resolve(dir, tarball));
    }
    project = join(dir, 'project');
    await run('mkdir', ['-p', project]);
    await writeFile(
      join(project, 'package.json'),
      JSON.stringify({ name: 'consumer', private: true }),
    );
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs], {
      cwd: project,
    });
  }, 120_000);

  afterAll(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('installs nothing but the package and what it depends on', async () => {
    expect(await readdir(join(project, 'node_modules', '@exec-kernel'))).toEqual(['core', 'loop']);
    const top = (await readdir(join(project, 'node_modules'))).filter((d) => !d.startsWith('.'));
    expect(top).toEqual(['@exec-kernel']);
  });

  const script = (load: string) => `
${load}
const detector = new LoopDetector({ maxDepth: 10 });
detector.registerNode({ taskId: 'parent-1', agentId: 'agent-1', taskType: 'research' });
const depth = detector.checkNewTask('child-1', 'agent-1', 'research', { parentTaskId: 'parent-1' });
let loopType;
try {
  detector.checkNewTask('deep-task', 'agent-1', 'research', { parentTaskId: 'parent-1', createdByTaskId: 'parent-1' });
} catch (e) {
  if (!LoopDetectionError.is(e) || !(e instanceof LoopDetectionError)) throw e;
  loopType = e.loopType;
}
console.log(JSON.stringify({ depth, loopType }));
`;

  it('works from an ESM import', async () => {
    await writeFile(
      join(project, 'esm.mjs'),
      script(`import { LoopDetector, LoopDetectionError } from '@exec-kernel/loop';`),
    );
    const { stdout } = await run(process.execPath, ['esm.mjs'], { cwd: project });
    expect(JSON.parse(stdout)).toEqual({ depth: 1, loopType: 'identity' });
  });

  it('works from a CommonJS require()', async () => {
    await writeFile(
      join(project, 'cjs.cjs'),
      script(`const { LoopDetector, LoopDetectionError } = require('@exec-kernel/loop');`),
    );
    const { stdout, stderr } = await run(process.execPath, ['cjs.cjs'], { cwd: project });
    expect(JSON.parse(stdout)).toEqual({ depth: 1, loopType: 'identity' });
    expect(stderr).not.toMatch(/Error/);
  });
});
