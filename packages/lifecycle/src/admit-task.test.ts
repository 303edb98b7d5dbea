import { LoopDetector, loopOver } from '@exec-kernel/loop';
import { describe, expect, it } from 'vitest';
import { admitTask } from './admit-task.js';

const NOW = Date.parse('2026-12-03T12:00:00Z');
const FULL = {
  consumer: 'end users',
  painPoint: 'login is slow',
  expectedValue: 'faster login',
  validationPath: 'p95 under 1s',
};
const root = { taskId: 'root', agentId: 'agent-1', taskType: 'epic' };

function rules(overrides: Partial<Parameters<typeof admitTask>[1]> = {}) {
  return { now: NOW, required: [], loop: loopOver([root], { maxDepth: 10 }), ...overrides };
}

describe('admitTask', () => {
  it('admits a task and returns its depth, limits and admission case', () => {
    const decision = admitTask(
      {
        taskId: 't1',
        agentId: 'agent-2',
        taskType: 'feature',
        parentTaskId: 'root',
        admission: FULL,
      },
      rules({ required: ['consumer', 'painPoint', 'expectedValue', 'validationPath'] }),
    );
    expect(decision).toMatchObject({ ok: true, depth: 1, admission: FULL });
    if (decision.ok) expect(decision.limits.maxSteps).toBe(50);
  });

  it('checks idle first: a sleeping agent is refused even with no admission case', () => {
    const decision = admitTask(
      { taskId: 't1', agentId: 'agent-1', taskType: 'feature' },
      rules({ sleep: { untilMs: NOW + 1000, reason: 'no_tasks' }, required: ['consumer'] }),
    );
    expect(decision.ok).toBe(false);
    if (!decision.ok) {
      expect(decision.error.code).toBe('IDLE_ENFORCED');
      expect(decision.error.message).toContain('agent-1');
    }
  });

  it('lets an agent whose sleep has ended create', () => {
    const decision = admitTask(
      { taskId: 't1', agentId: 'agent-1', taskType: 'feature' },
      rules({ sleep: { untilMs: NOW } }),
    );
    expect(decision.ok).toBe(true);
  });

  it('checks admission before the loop rules', () => {
    const decision = admitTask(
      { taskId: 'root', agentId: 'agent-1', taskType: 'epic', parentTaskId: 'root' },
      rules({ required: ['consumer', 'painPoint'] }),
    );
    expect(decision.ok).toBe(false);
    if (!decision.ok) {
      expect(decision.error.code).toBe('TASK_ADMISSION');
      expect(decision.error.details).toMatchObject({ missing: ['consumer', 'painPoint'] });
    }
  });

  it('refuses an extra admission field that is not text instead of dropping it', () => {
    const decision = admitTask(
      { taskId: 't1', agentId: 'agent-1', taskType: 'feature', admission: { ...FULL, cost: 5 } },
      rules(),
    );
    expect(decision.ok).toBe(false);
    if (!decision.ok) {
      expect(decision.error.code).toBe('TASK_ADMISSION');
      expect(decision.error.details).toMatchObject({
        invalid: [{ field: 'cost', problem: 'must be a string, got number' }],
      });
    }
  });

  it('applies the loop rules through a LoopDetector as through rows', () => {
    const detector = new LoopDetector({ maxDepth: 10 });
    detector.registerNode(root);
    const candidate = {
      taskId: 'c1',
      agentId: 'agent-1',
      taskType: 'epic',
      createdByTaskId: 'root',
    };
    for (const loop of [detector, loopOver([root], { maxDepth: 10 })]) {
      const decision = admitTask(candidate, rules({ loop }));
      expect(decision.ok).toBe(false);
      if (!decision.ok) {
        expect(decision.error.code).toBe('LOOP_DETECTED');
        expect(decision.error.details).toMatchObject({ loopType: 'identity' });
      }
    }
  });

  it('checks the new depth against the task budget after the loop rules', () => {
    const decision = admitTask(
      {
        taskId: 't1',
        agentId: 'agent-2',
        taskType: 'feature',
        parentTaskId: 'root',
        budget: { maxDepth: 0 },
      },
      rules(),
    );
    expect(decision.ok).toBe(false);
    if (!decision.ok) {
      expect(decision.error.code).toBe('BUDGET_EXCEEDED');
      expect(decision.error.message).toBe('Task t1 exceeded depth budget: depth 1, max 0');
    }
  });

  it('refuses invalid limits as invalid input, with the limit named', () => {
    const decision = admitTask(
      { taskId: 't1', agentId: 'agent-1', taskType: 'feature', budget: { maxSteps: -1 } },
      rules(),
    );
    expect(decision.ok).toBe(false);
    if (!decision.ok) {
      expect(decision.error.code).toBe('INVALID_INPUT');
      expect(decision.error.message).toBe(
        'Budget limit maxSteps must be a non-negative integer, got -1',
      );
    }
  });

  it('fills limits from the given defaults', () => {
    const decision = admitTask(
      { taskId: 't1', agentId: 'agent-1', taskType: 'feature', budget: { maxTokens: 100 } },
      rules({
        budgetDefaults: {
          maxSteps: 5,
          maxDepth: 3,
          maxDurationSeconds: 60,
          maxTokens: null,
          maxCostUsd: 1,
        },
      }),
    );
    expect(decision).toMatchObject({
      ok: true,
      limits: { maxSteps: 5, maxDepth: 3, maxDurationSeconds: 60, maxTokens: 100, maxCostUsd: 1 },
    });
  });
});
