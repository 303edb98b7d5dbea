import {
  assertDepthWithinBudget,
  type BudgetLimits,
  type BudgetLimitsInput,
  resolveLimits,
} from '@exec-kernel/budget';
import {
  type BudgetExceededError,
  type IdleEnforcementError,
  InvalidInputError,
  KernelError,
  type LoopDetectionError,
  type TaskAdmissionError,
} from '@exec-kernel/core';
import type { LoopDecision, WorkNode } from '@exec-kernel/loop';
import { validateAdmission } from './admission.js';
import { idleRefusal, type SleepState } from './idle-guard.js';

/** A task asking to be created: its place in the graph, its admission case and its budget. */
export interface TaskCandidate extends WorkNode {
  /** The admission case as given (any shape; it is checked, not trusted). */
  admission?: unknown;
  /** Budget limits asked for; missing ones come from {@link AdmissionRules.budgetDefaults}. */
  budget?: BudgetLimitsInput | undefined;
}

/** Anything that decides the loop rules for a new node: a `LoopDetector`, or rows linked by `loopOver`. */
export interface LoopRules {
  evaluate(node: WorkNode): LoopDecision;
}

/** What the backend knows when a task asks to be created. */
export interface AdmissionRules {
  /** The time of the request, ms since the epoch (from the backend's clock). */
  now: number;
  /** The creating agent's sleep, if it has one (ended or not). */
  sleep?: SleepState | undefined;
  /** The admission fields that must be present (config `admission.required`). */
  required?: readonly string[] | undefined;
  /** The loop rules over the candidate's ancestry. */
  loop: LoopRules;
  /** Limits for what the candidate does not ask for (config `budget`). */
  budgetDefaults?: Readonly<BudgetLimits> | undefined;
}

/** Why a task was refused, as the error the backend throws or answers with. */
export type AdmissionRefusal =
  | IdleEnforcementError
  | TaskAdmissionError
  | LoopDetectionError
  | BudgetExceededError
  | InvalidInputError;

/** The outcome of {@link admitTask}. */
export type AdmitDecision =
  | {
      readonly ok: true;
      /** The new task's depth under its parent. */
      readonly depth: number;
      /** Its budget: what it asked for, filled from the defaults. */
      readonly limits: BudgetLimits;
      /** Its admission case as text fields (`undefined` when none was given). */
      readonly admission: Readonly<Record<string, string>> | undefined;
    }
  | { readonly ok: false; readonly error: AdmissionRefusal };

/**
 * Decides whether a task may be created, running the rules in their one order: **idle** (a
 * sleeping agent invents no work), **admission** (the case for the task is complete), **loop**
 * (cycle, identity, depth over its ancestry), **budget** (its limits are valid and its depth is
 * within its own depth budget). The first refusal wins. Pure and synchronous: the local store, the
 * coordination service and the Paperclip adapter load what it needs and all call this.
 *
 * @example
 * ```ts
 * const decision = admitTask(
 *   { taskId: 'child-1', agentId: 'agent-1', taskType: 'feature', parentTaskId: 'parent-1' },
 *   { now: Date.now(), required: [], loop: detector },
 * );
 * if (!decision.ok) throw decision.error;
 * ```
 */
export function admitTask(candidate: TaskCandidate, rules: AdmissionRules): AdmitDecision {
  const { taskId, agentId } = candidate;
  const asleep = idleRefusal(agentId, rules.sleep, rules.now, taskId);
  if (asleep !== undefined) return { ok: false, error: asleep };

  try {
    validateAdmission(candidate.admission, { required: rules.required, taskId });
  } catch (error) {
    return { ok: false, error: error as TaskAdmissionError };
  }

  // A candidate is a WorkNode; its admission and budget fields are not read by the loop rules.
  const loop = rules.loop.evaluate(candidate);
  if (!loop.ok) return { ok: false, error: loop.error };

  let limits: BudgetLimits;
  try {
    limits = resolveLimits(candidate.budget, rules.budgetDefaults);
    assertDepthWithinBudget(taskId, loop.depth, limits.maxDepth);
  } catch (error) {
    if (KernelError.is(error)) return { ok: false, error: error as BudgetExceededError };
    const message = (error as Error).message;
    return {
      ok: false,
      error: new InvalidInputError({ field: 'budget', problem: message }, { message }),
    };
  }
  return { ok: true, depth: loop.depth, limits, admission: admissionText(candidate.admission) };
}

// After validateAdmission every present field is a string; null/undefined ones are left out.
function admissionText(input: unknown): Record<string, string> | undefined {
  if (typeof input !== 'object' || input === null) return undefined;
  const out: Record<string, string> = {};
  for (const [field, value] of Object.entries(input)) {
    if (typeof value === 'string')
      Object.defineProperty(out, field, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
  }
  return out;
}
