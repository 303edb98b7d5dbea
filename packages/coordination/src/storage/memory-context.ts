import type { JsonValue } from '../model.js';
import type { TaskContext, TaskNote } from './storage.js';

const copy = <T>(value: T): T => structuredClone(value);

/** Tasks' context and notes in process memory, for {@link MemoryStorage}: copies in and out. */
export class MemoryContexts {
  readonly #context = new Map<string, Map<string, JsonValue>>();
  readonly #notes = new Map<string, TaskNote[]>();

  read(taskId: string): TaskContext {
    return { context: this.#contextOf(taskId), notes: copy(this.#notes.get(taskId) ?? []) };
  }

  /** Sets `key` (deletes it for `undefined`); the context after. */
  set(taskId: string, key: string, value: JsonValue | undefined): Record<string, JsonValue> {
    const context = this.#context.get(taskId) ?? new Map<string, JsonValue>();
    this.#context.set(taskId, context);
    if (value === undefined) context.delete(key);
    else context.set(key, copy(value));
    return this.#contextOf(taskId);
  }

  addNote(taskId: string, note: TaskNote): TaskNote {
    const stored = { at: note.at, agentId: note.agentId, text: note.text };
    const notes = this.#notes.get(taskId) ?? [];
    this.#notes.set(taskId, notes);
    notes.push(stored);
    return copy(stored);
  }

  /** A task's context as a record, keys sorted as the SQL engines return them. */
  #contextOf(taskId: string): Record<string, JsonValue> {
    const entries = [...(this.#context.get(taskId) ?? [])].sort(([a], [b]) =>
      a < b ? -1 : a > b ? 1 : 0,
    );
    return copy(Object.fromEntries(entries));
  }
}
