export type { ActionCallRef, ActionLoopType, LoopType } from '@exec-kernel/core';
// Re-exported so the error can be caught with what the detector module gives you.
export { LoopDetectionError } from '@exec-kernel/core';
export { callFingerprint, canonicalJson, resultDigest } from './action-digest.js';
export type {
  ActionEvent,
  ActionGuardJSON,
  ActionGuardOptions,
  TaskActionCall,
} from './action-guard.js';
export { ActionGuard } from './action-guard.js';
export type {
  ActionCall,
  ActionCheck,
  ActionHistoryJSON,
  ActionLoopWarning,
  ActionResultRecord,
} from './action-history.js';
export { ActionHistory } from './action-history.js';
export type {
  ActionRules,
  ActionRulesOptions,
  ActionThreshold,
  WindowThreshold,
} from './action-rules.js';
export { DEFAULT_ACTION_RULES, resolveActionRules } from './action-rules.js';
export type {
  LoopDetectorJSON,
  LoopDetectorOptions,
  NewTaskOptions,
  RegisterEvent,
  RegisteredNode,
} from './loop-detector.js';
export { LoopDetector } from './loop-detector.js';
export type { ChainLinks, ChainNode, LoopDecision, StoredWorkNode, WorkNode } from './rules.js';
export {
  decideNewTask,
  evaluateNewTask,
  linkWorkNodes,
  loopFlags,
  loopOver,
  normalizeTitle,
} from './rules.js';
