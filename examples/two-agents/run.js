// Two agents share a backlog through the coordination service, on its embedded SQLite engine:
// a planner enqueues work, a worker claims and completes it, a self-looping subtask is refused
// before it exists, and a budget overrun lands in the escalation queue for a human.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinationClient, startCoordinationServer } from '@exec-kernel/coordination';
import { KernelError } from '@exec-kernel/core';

const dir = mkdtempSync(join(tmpdir(), 'exec-kernel-two-agents-'));
const adminToken = 'example-admin-token';
const server = await startCoordinationServer({
  db: `sqlite:${join(dir, 'queue.db')}`,
  adminToken,
  port: 0,
});
console.log(`service: ${server.url} (${server.service.storage.location})`);

try {
  const admin = new CoordinationClient({ url: server.url, token: adminToken });
  const planner = new CoordinationClient({
    url: server.url,
    token: (await admin.registerAgent('planner')).token,
  });
  const worker = new CoordinationClient({
    url: server.url,
    token: (await admin.registerAgent('worker')).token,
  });

  // 1. The planner breaks a goal into tasks; each carries its case for existing.
  const why = (pain) => ({
    consumer: 'people who log in',
    painPoint: pain,
    expectedValue: 'login under 1 s at p95',
    validationPath: 'the login benchmark',
  });
  const { task: epic } = await planner.enqueue({
    id: 'login-epic',
    type: 'plan',
    title: 'Speed up login',
    admission: why('login takes 4 s'),
    state: 'backlog',
  });
  console.log(`planner: enqueued ${epic.id} (${epic.state})`);
  const steps = [
    ['profile', 'analysis', 'Profile the login query', {}],
    ['index', 'change', 'Index the sessions table', {}],
    ['benchmark', 'bench', 'Benchmark login', { maxSteps: 3 }],
  ];
  for (const [id, type, title, budget] of steps) {
    const { task } = await planner.enqueue({
      id,
      type,
      title,
      parentId: epic.id,
      createdById: epic.id,
      admission: why(`part of ${epic.title}`),
      budget,
    });
    console.log(`planner: enqueued ${task.id} (depth ${task.depth})`);
  }

  // 2. The planner, working on the epic, tries to plan the same thing again: refused, not created.
  try {
    await planner.enqueue({
      id: 'login-epic-2',
      type: 'plan',
      title: 'speed up  LOGIN',
      createdById: epic.id,
      admission: why('login takes 4 s'),
    });
  } catch (error) {
    if (!KernelError.is(error)) throw error;
    console.log(`planner: refused: ${error.message}`);
  }

  // 3. The worker claims and completes tasks; the benchmark needs more steps than its budget.
  const handled = await worker.work(
    async (job) => {
      const needed = job.task.id === 'benchmark' ? 5 : 2;
      for (let i = 0; i < needed; i++) await job.step();
      console.log(`worker: finished ${job.task.id} in ${needed} steps`);
      return 'done';
    },
    {
      untilIdle: true,
      waitSeconds: 0,
      onError: (error, job) => console.log(`worker: ${job.task.id} stopped: ${error.message}`),
    },
  );
  console.log(`worker: handled ${handled} tasks`);

  // 4. What a human sees: the escalation queue, and where every task ended.
  const { escalations } = await admin.listEscalations({ status: 'open' });
  for (const e of escalations) {
    console.log(
      `escalation: [${e.violation?.kind ?? e.kind}] ${e.taskId}: ${e.violation?.message ?? e.comment}`,
    );
  }
  const { tasks } = await admin.listTasks();
  console.log(`tasks: ${tasks.map((t) => `${t.id}=${t.state}`).join(', ')}`);
  const { events } = await admin.events({ limit: 1000 });
  console.log(`events: ${events.length} in the log`);
} finally {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
