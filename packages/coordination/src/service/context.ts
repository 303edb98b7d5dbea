import { type BudgetLimits, DEFAULT_LIMITS, resolveLimits } from '@exec-kernel/budget';
import { type Clock, systemClock, type Violation } from '@exec-kernel/core';
import { ADMISSION_FIELDS } from '@exec-kernel/lifecycle';
import { type ActionRules, resolveActionRules } from '@exec-kernel/loop';
import type { NewEvent } from '../model.js';
import type { ChangeSignal, Storage } from '../storage/storage.js';
import { newEvent } from './records.js';
import { hashToken } from './tokens.js';
import type { Caller, ServiceCounters, ServiceSettings } from './types.js';

/** {@link ServiceSettings} with every default filled in. */
export interface ResolvedSettings {
  readonly maxDepth: number;
  readonly admissionRequired: readonly string[];
  readonly budgetDefaults: Readonly<BudgetLimits>;
  readonly warnAt: number;
  readonly idleTimeoutSeconds: number;
  readonly defaultLeaseSeconds: number;
  readonly maxLeaseSeconds: number;
  readonly maxAttempts: number;
  readonly maxWaitSeconds: number;
  readonly reapIntervalMs: number;
  readonly eventGapMs: number;
  readonly actionRules: ActionRules;
}

/** What every service module works with: one per service, made by {@link createContext}. */
export interface ServiceContext {
  readonly storage: Storage;
  readonly clock: Clock;
  readonly settings: ResolvedSettings;
  readonly counters: ServiceCounters;
  /** Aborted when the service stops: long-polls and event streams end. */
  readonly stopping: AbortController;
  readonly adminTokenHash: string;
  /** Tokens seen a moment ago, and whom they stand for until when (see `authenticate`). */
  readonly callers: Map<string, { caller: Caller; until: number }>;
  /** The Violation recorded for each rule violation the service escalated. */
  readonly violations: WeakMap<object, Violation>;
  /** Whether a reaper pass is running (passes never overlap). */
  reaping: boolean;
}

/** Fills in the defaults of `settings`. */
export function resolveSettings(settings: ServiceSettings): ResolvedSettings {
  return {
    maxDepth: settings.maxDepth ?? 10,
    admissionRequired: settings.admissionRequired ?? ADMISSION_FIELDS,
    budgetDefaults: resolveLimits(settings.budgetDefaults, DEFAULT_LIMITS),
    warnAt: settings.warnAt ?? 0.8,
    idleTimeoutSeconds: settings.idleTimeoutSeconds ?? 300,
    defaultLeaseSeconds: settings.defaultLeaseSeconds ?? 60,
    maxLeaseSeconds: settings.maxLeaseSeconds ?? 3600,
    maxAttempts: settings.maxAttempts ?? 3,
    maxWaitSeconds: settings.maxWaitSeconds ?? 60,
    reapIntervalMs: settings.reapIntervalMs ?? 1000,
    eventGapMs: settings.eventGapMs ?? 2000,
    actionRules: resolveActionRules(settings.actionRules),
  };
}

/** A context over `storage`, with zeroed counters. */
export function createContext(
  options: { storage: Storage; adminToken: string; clock?: Clock | undefined } & ServiceSettings,
): ServiceContext {
  return {
    storage: options.storage,
    clock: options.clock ?? systemClock,
    settings: resolveSettings(options),
    counters: {
      enqueued: 0,
      claims: 0,
      claimMisses: 0,
      transitions: {},
      violations: {},
      leasesExpired: 0,
      escalations: 0,
      actions: 0,
      actionWarnings: {},
    },
    stopping: new AbortController(),
    adminTokenHash: hashToken(options.adminToken),
    callers: new Map(),
    violations: new WeakMap(),
    reaping: false,
  };
}

/** An event of `type` stamped with the context's clock. */
export function eventNow(
  ctx: ServiceContext,
  type: string,
  fields: Partial<Omit<NewEvent, 'type' | 'at'>> = {},
): NewEvent {
  return newEvent(type, fields, ctx.clock.now());
}

/**
 * Resolves after `ms`, when the storage signals a change (of kind `only`, when given), when
 * `signal` aborts or when the service stops, whichever comes first.
 */
export function waitForChange(
  ctx: ServiceContext,
  ms: number,
  signal: AbortSignal | undefined,
  only?: ChangeSignal,
): Promise<void> {
  return new Promise((resolve) => {
    const stopping = ctx.stopping.signal;
    const done = () => {
      clearTimeout(timer);
      off();
      signal?.removeEventListener('abort', done);
      stopping.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    const off = ctx.storage.onChange((s) => {
      if (only === undefined || s === only) done();
    });
    signal?.addEventListener('abort', done, { once: true });
    stopping.addEventListener('abort', done, { once: true });
  });
}

/** Adds one to `counts[key]`. */
export function countOne(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}
