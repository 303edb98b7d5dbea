import { LoopDetectionError } from '@exec-kernel/core';
import { describe, expect, it } from 'vitest';
import type { Command } from '../context.js';
import { callTool, requestFor, toolFor } from './tools.js';

const io = { stdout: { write: () => true }, stderr: { write: () => true }, env: {}, cwd: '/' };

/** A command that answers with whatever `run` gives, so the tool result can be checked against it. */
function command(run: Command['run'], options: Command['options'] = {}): Command {
  return {
    usage: 'Usage: exec-kernel probe <task-id>\n\nA probe.',
    options,
    positionals: { min: 1, max: 1, names: '<task-id>' },
    run,
  };
}

const call = (spec: Command, input: unknown) => {
  const tool = toolFor('probe', 'a probe', spec);
  return callTool(tool, requestFor(tool, input), {
    io,
    config: undefined,
    signal: new AbortController().signal,
  });
};

describe('an MCP tool call', () => {
  it('runs the command in-process and answers with its data, warnings after it', async () => {
    const data = { taskId: 't1', nested: { n: 1 } };
    const result = await call(
      command(
        async (ctx) => {
          ctx.out.warn('WARN: [steps] nearly there');
          return {
            line: 'OK: t1',
            data: { ...data, seen: ctx.positionals, type: ctx.values.type },
          };
        },
        { type: { type: 'string', multiple: true } },
      ),
      { taskId: 't1', type: 'x' },
    );
    expect(result).toEqual({
      content: [
        { type: 'text', text: JSON.stringify({ ...data, seen: ['t1'], type: ['x'] }) },
        { type: 'text', text: 'WARN: [steps] nearly there' },
      ],
      isError: false,
      structuredContent: { ...data, seen: ['t1'], type: ['x'] },
    });
  });

  it('gives a refusal as its line first, then its Violation as structured content', async () => {
    const result = await call(
      command(async () => {
        throw new LoopDetectionError({ loopType: 'cycle', taskId: 't1', chain: ['t1', 't1'] });
      }),
      { taskId: 't1' },
    );
    expect(result.isError).toBe(true);
    expect((result.content as Array<{ text: string }>)[0]?.text).toMatch(/^DENIED: \[cycle\] /);
    expect(result.structuredContent).toMatchObject({ code: 'LOOP_DETECTED', kind: 'loop_cycle' });
  });

  it('gives every result of a blocking command, and no structured content for more than one', async () => {
    const result = await call(
      command(async (ctx) => {
        ctx.out.progress({ line: 'SLEEP', data: { event: 'sleep' } });
        return { line: 'WAKE', data: { event: 'wake' } };
      }),
      { taskId: 't1' },
    );
    expect(result).toEqual({
      content: [{ type: 'text', text: '{"event":"sleep"}\n{"event":"wake"}' }],
      isError: false,
    });
  });
});
