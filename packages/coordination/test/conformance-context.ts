import { expect, it } from 'vitest';
import type { Storage } from '../src/storage/storage.js';
import type { ConformanceTarget } from './conformance.js';
import { event, taskRow } from './conformance.js';

/**
 * A task's context and notes, kept by the storage so every agent sees them: each write with its
 * event in one transaction, refused (`undefined`, nothing written) for an unknown task. Part of
 * {@link storageConformance}.
 */
export function contextConformance(current: () => Storage, target: () => ConformanceTarget): void {
  it('keeps a task context: sets, overwrites and deletes keys of any JSON value, each with its event', async () => {
    const storage = current();
    const task = (await storage.insertTask(taskRow(), event('e'))).task;
    const other = (await storage.insertTask(taskRow(), event('e'))).task;
    expect(await storage.getContext(task.id)).toEqual({ context: {}, notes: [] });
    const set = (key: string, value: Parameters<Storage['setContext']>[2]) =>
      storage.setContext(
        task.id,
        key,
        value,
        event('task.context', { taskId: task.id, data: { key } }),
      );
    expect(await set('b', { nested: [1, 'two', null, true], n: 1.5 })).toEqual({
      b: { nested: [1, 'two', null, true], n: 1.5 },
    });
    expect(await set('a', 'first')).toEqual({
      a: 'first',
      b: { nested: [1, 'two', null, true], n: 1.5 },
    });
    expect(await set('a', 0)).toEqual({ a: 0, b: { nested: [1, 'two', null, true], n: 1.5 } });
    expect(await set('c', null)).toMatchObject({ c: null });
    expect(await set('b', undefined)).toEqual({ a: 0, c: null });
    // Deleting a key that is not there still records the request.
    expect(await set('zz', undefined)).toEqual({ a: 0, c: null });
    const { context } = (await storage.getContext(task.id)) ?? { context: {} };
    expect(Object.keys(context)).toEqual(['a', 'c']);
    expect(await storage.getContext(other.id)).toEqual({ context: {}, notes: [] });
    const events = (await storage.readEvents(0, 100)).filter((e) => e.type === 'task.context');
    expect(events.map((e) => e.data)).toEqual(
      ['b', 'a', 'a', 'c', 'b', 'zz'].map((key) => ({ key })),
    );
  });

  it('keeps notes in the order written, with who wrote them and when', async () => {
    const storage = current();
    const task = (await storage.insertTask(taskRow(), event('e'))).task;
    const notes = [
      { at: 3_000, agentId: 'agent-b', text: 'second thoughts: é, 日本, 🎉' },
      { at: 2_000, agentId: 'agent-a', text: 'written later, stamped earlier' },
    ];
    for (const note of notes) {
      expect(await storage.addNote(task.id, note, event('task.note', { taskId: task.id }))).toEqual(
        note,
      );
    }
    expect(await storage.getContext(task.id)).toEqual({ context: {}, notes });
    expect((await storage.readEvents(0, 100)).filter((e) => e.type === 'task.note')).toHaveLength(
      2,
    );
  });

  it('refuses context and notes for an unknown task, writing nothing', async () => {
    const storage = current();
    const before = (await storage.readEvents(0, 100)).length;
    expect(await storage.getContext('ghost')).toBeUndefined();
    expect(await storage.setContext('ghost', 'k', 1, event('task.context'))).toBeUndefined();
    expect(
      await storage.setContext('ghost', 'k', undefined, event('task.context')),
    ).toBeUndefined();
    expect(
      await storage.addNote('ghost', { at: 1, agentId: 'a', text: 't' }, event('task.note')),
    ).toBeUndefined();
    expect(await storage.readEvents(0, 100)).toHaveLength(before);
    // Created afterwards, the task starts with nothing from the refused writes.
    await storage.insertTask(taskRow({ id: 'ghost' }), event('e'));
    expect(await storage.getContext('ghost')).toEqual({ context: {}, notes: [] });
  });

  it('keeps context and notes across a close and reopen', async () => {
    const { reopen } = target();
    if (reopen === undefined) return;
    let storage = current();
    const task = (await storage.insertTask(taskRow(), event('e'))).task;
    await storage.setContext(task.id, 'k', { v: [1] }, event('task.context'));
    await storage.addNote(task.id, { at: 1, agentId: 'a', text: 't' }, event('task.note'));
    storage = await reopen();
    expect(await storage.getContext(task.id)).toEqual({
      context: { k: { v: [1] } },
      notes: [{ at: 1, agentId: 'a', text: 't' }],
    });
  });
}
