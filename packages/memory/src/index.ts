// Re-exported so a store error can be caught with what the memory module gives you.
export { StoreError } from '@exec-kernel/core';
export type { MemoryEvent } from './events.js';
export { applyEvent } from './events.js';
export type { FileStoreOptions } from './file-store.js';
export { FileStore } from './file-store.js';
export type { MemoryOptions } from './session.js';
export { MemorySession } from './session.js';
export type {
  ActionRefusal,
  AgentRecord,
  JsonValue,
  MemoryStateJSON,
  StoredActions,
  StoredBudget,
  TaskNote,
  TaskRecord,
} from './state.js';
export { FORMAT_VERSION, MemoryState } from './state.js';
export type { StateStore } from './store.js';
export { InMemoryStore } from './store.js';
export type { AttachableKernels, TaskFilter } from './task-memory.js';
export { TaskMemory } from './task-memory.js';
