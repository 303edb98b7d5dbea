export type { LoopType } from '@exec-kernel/core';
// Re-exported so the error can be caught with what the detector module gives you.
export { LoopDetectionError } from '@exec-kernel/core';
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
