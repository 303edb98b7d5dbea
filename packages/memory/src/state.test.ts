import { StoreError } from '@exec-kernel/core';
import { describe, expect, it } from 'vitest';
import { MemoryState, type TaskRecord } from './state.js';

const task = (taskId: string, extra: Partial<TaskRecord> = {}): TaskRecord => ({
  taskId,
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
  state: 'todo',
  history: [],
  notes: [],
  context: {},
  ...extra,
});

function problem(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (StoreError.is(e)) return e.problem;
    throw e;
  }
  return 'none';
}

describe('MemoryState text form', () => {
  it('is valid JSON with one record per line, and round-trips', () => {
    const state = new MemoryState(
      [task('a'), task('quote"d\\id', { title: 'x' })],
      [{ agentId: 'bot' }],
    );
    const text = state.toText();
    expect(text.split('\n')).toEqual([
      '{"version":1,"tasks":[',
      `${JSON.stringify(task('a'))},`,
      JSON.stringify(task('quote"d\\id', { title: 'x' })),
      '],"agents":[',
      '{"agentId":"bot"}',
      ']}',
      '',
    ]);
    expect(JSON.parse(text)).toEqual(state.toJSON());
    const back = MemoryState.fromText(text, 'f');
    expect(back.toJSON()).toEqual(state.toJSON());
    expect(back.tasks.get('quote"d\\id')?.title).toBe('x');
    expect(new MemoryState().toText()).toBe('{"version":1,"tasks":[\n],"agents":[\n]}\n');
    expect(MemoryState.fromText(new MemoryState().toText(), 'f').tasks.size).toBe(0);
  });

  it('writes untouched records back byte for byte and only re-serialises the ones read', () => {
    // Key order a serialiser would not produce, so a re-serialised record would be visible.
    const odd =
      '{"taskId":"b","state":"todo","history":[],"notes":[],"context":{},"createdAt":"x","updatedAt":"x"}';
    const text = `{"version":1,"tasks":[\n${JSON.stringify(task('a'))},\n${odd}\n],"agents":[\n]}\n`;
    const state = MemoryState.fromText(text, 'f');
    expect(state.toText()).toBe(text);
    (state.tasks.get('a') as TaskRecord).state = 'blocked';
    const out = state.toText();
    expect(out).toContain(odd);
    expect(out).toContain('"state":"blocked"');
  });

  it('reads a file edited by hand in any JSON layout', () => {
    const pretty = JSON.stringify(
      { version: 1, tasks: [task('a'), task('b')], agents: [] },
      null,
      2,
    );
    const state = MemoryState.fromText(pretty, 'f');
    expect([...state.tasks.keys()]).toEqual(['a', 'b']);
    expect(problem(() => MemoryState.fromText('{"version":1,"tasks":[', 'f'))).toBe('corrupt');
  });

  it('refuses a newer version before reading any record, and a damaged record when it is read', () => {
    expect(
      problem(() => MemoryState.fromText('{"version":7,"tasks":[\n{"taskId":"a"\n', 'f')),
    ).toBe('newer_version');
    const damaged = `{"version":1,"tasks":[\n{"taskId":"a","state":"open","history":[]}\n],"agents":[\n]}\n`;
    const state = MemoryState.fromText(damaged, 'f');
    expect(problem(() => state.tasks.get('a'))).toBe('corrupt');
    expect(
      problem(() => MemoryState.fromJSON({ version: 1, tasks: [{ taskId: 1 }], agents: [] }, 'f')),
    ).toBe('corrupt');
  });

  it('clones deeply', () => {
    const state = new MemoryState([task('a')]);
    const copy = state.clone();
    (copy.tasks.get('a') as TaskRecord).state = 'done';
    expect(state.tasks.get('a')?.state).toBe('todo');
    expect(copy.changed).toBe(false);
  });
});
