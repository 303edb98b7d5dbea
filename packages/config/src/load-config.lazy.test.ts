import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it, vi } from 'vitest';

// In a file of its own, and the module under test imported only after the mock is in place.
let yamlLoaded = false;
vi.doMock('yaml', async (importOriginal) => {
  yamlLoaded = true;
  return await importOriginal();
});

let root: string | undefined;

afterAll(async () => {
  vi.doUnmock('yaml');
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

it('loads the YAML parser only when there is a file to read', async () => {
  const { loadConfig } = await import('./index.js');
  root = await realpath(await mkdtemp(join(tmpdir(), 'ek-lazy-')));
  await mkdir(join(root, '.git'));

  const loaded = await loadConfig({ cwd: root, env: { EXEC_KERNEL_BUDGET_MAX_STEPS: '3' } });
  expect(loaded.config.budget.maxSteps).toBe(3);
  expect(yamlLoaded).toBe(false);

  await writeFile(join(root, '.exec-kernel.yml'), 'budget: { max_steps: 4 }\n');
  expect((await loadConfig({ cwd: root, env: {} })).config.budget.maxSteps).toBe(4);
  expect(yamlLoaded).toBe(true);
});
