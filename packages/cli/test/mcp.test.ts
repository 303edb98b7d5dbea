import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BIN, cli, scratch } from './helpers.js';

// `exec-kernel mcp` driven by the official MCP SDK client, over the built binary's stdio.

let dir: string;
let cleanup: () => Promise<void>;
let client: Client;

const ADMISSION = {
  consumer: 'users',
  painPoint: 'slow login',
  expectedValue: 'fast login',
  validationPath: 'login bench',
};

interface ToolResult {
  isError?: boolean;
  content: Array<{ type: string; text: string }>;
  structuredContent?: Record<string, unknown>;
}

const call = async (name: string, args: Record<string, unknown> = {}): Promise<ToolResult> =>
  (await client.callTool({ name, arguments: args })) as ToolResult;

beforeEach(async () => {
  ({ dir, done: cleanup } = await scratch());
  client = new Client({ name: 'exec-kernel-test', version: '1.0.0' });
  await client.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [BIN, 'mcp'],
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', HOME: dir },
      stderr: 'pipe',
    }),
  );
});

afterEach(async () => {
  await client.close();
  await cleanup();
});

describe('exec-kernel mcp', () => {
  it('offers every command but serve and mcp as a tool, with flags as camelCase properties', async () => {
    expect(client.getServerVersion()?.name).toBe('exec-kernel');
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(
      [
        'action',
        'action_result',
        'check_budget',
        'check_loop',
        'config_show',
        'config_validate',
        'context_get',
        'context_note',
        'context_set',
        'sleep',
        'step',
        'task_checkout',
        'task_claim',
        'task_create',
        'task_list',
        'task_release',
        'task_show',
        'task_transition',
        'validate',
        'wake',
      ].sort(),
    );
    const create = tools.find((t) => t.name === 'task_create');
    expect(create?.inputSchema.required).toEqual(['taskId']);
    expect(Object.keys(create?.inputSchema.properties ?? {})).toEqual(
      expect.arrayContaining(['taskId', 'agentId', 'type', 'parentTaskId', 'painPoint']),
    );
    expect(create?.inputSchema.properties).not.toHaveProperty('json');
    expect(create?.description).toMatch(/admission/);
  });

  it('runs a task through the shared file store, and refuses as the CLI does', async () => {
    const created = await call('task_create', {
      taskId: 't1',
      agentId: 'a1',
      type: 'feature',
      ...ADMISSION,
    });
    expect(created.isError).toBe(false);
    expect(created.structuredContent).toMatchObject({ taskId: 't1', state: 'todo' });

    const refused = await call('task_transition', { taskId: 't1', state: 'done' });
    expect(refused.isError).toBe(true);
    expect(refused.content[0]?.text).toBe('INVALID: No valid transition from todo to done');
    expect(refused.structuredContent).toMatchObject({
      kind: 'invalid_transition',
      code: 'INVALID_TRANSITION',
    });

    expect((await call('task_transition', { taskId: 't1', state: 'in_progress' })).isError).toBe(
      false,
    );
    expect((await call('step', { taskId: 't1', count: 3 })).structuredContent).toMatchObject({
      stepsTaken: 3,
    });

    const loop = await call('check_loop', {
      taskId: 't2',
      agentId: 'a1',
      taskType: 'feature',
      parentTaskId: 't1',
      createdByTaskId: 't1',
    });
    expect(loop.isError).toBe(true);
    expect(loop.structuredContent).toMatchObject({ kind: 'loop_identity' });

    // The CLI in the same folder sees what the tools did.
    const shown = await cli(dir, ['task', 'show', 't1', '--json']);
    expect(JSON.parse(shown.stdout)).toMatchObject({
      state: 'in_progress',
      budget: { stepsTaken: 3 },
    });
  });

  it('asks before each tool call: allowed, warned, refused with the Violation, as the CLI counts', async () => {
    expect(
      (await call('task_create', { taskId: 't1', agentId: 'a1', type: 'x', ...ADMISSION })).isError,
    ).toBe(false);
    const { tools } = await client.listTools();
    const schema = tools.find((t) => t.name === 'action')?.inputSchema;
    expect(schema?.required).toEqual(['taskId', 'tool']);
    expect(Object.keys(schema?.properties ?? {})).toEqual(
      expect.arrayContaining(['taskId', 'tool', 'args', 'result', 'resultFile', 'resultDigest']),
    );

    // Arguments are the JSON value itself; key order does not matter.
    const first = await call('action', {
      taskId: 't1',
      tool: 'read_file',
      args: { path: 'a.ts', n: 1 },
    });
    expect(first).toMatchObject({
      isError: false,
      structuredContent: { taskId: 't1', tool: 'read_file', calls: 1, repeats: 1, warnings: [] },
    });
    await call('action', { taskId: 't1', tool: 'read_file', args: { n: 1, path: 'a.ts' } });
    const warned = await call('action', {
      taskId: 't1',
      tool: 'read_file',
      args: { n: 1, path: 'a.ts' },
    });
    expect(warned.isError).toBe(false);
    expect(warned.structuredContent).toMatchObject({
      repeats: 3,
      warnings: [{ loopType: 'repeat', count: 3 }],
    });
    expect(warned.content.at(-1)?.text).toBe(
      'WARN: [repeat] Task t1 called read_file with the same arguments 3 times in a row (warning at 3, blocked at 5)',
    );
    // The CLI in the same folder counts on from the same history.
    const fourth = await cli(dir, ['action', 't1', 'read_file', '--args', '{"path":"a.ts","n":1}']);
    expect(fourth.stdout).toBe('ALLOWED: read_file call 4 of t1 (4 in a row)\n');

    const refused = await call('action', {
      taskId: 't1',
      tool: 'read_file',
      args: { path: 'a.ts', n: 1 },
    });
    expect(refused.isError).toBe(true);
    expect(refused.content[0]?.text).toBe(
      'DENIED: [repeat] Task t1 called read_file with the same arguments 5 times in a row (blocked at 5)',
    );
    expect(refused.structuredContent).toMatchObject({
      kind: 'loop_repeat',
      code: 'LOOP_DETECTED',
      limit: 4,
      observed: 5,
      details: { tool: 'read_file', count: 5 },
    });

    const result = await call('action_result', { taskId: 't1', result: 'file text' });
    expect(result).toMatchObject({
      isError: false,
      structuredContent: { tool: 'read_file', calls: 4 },
    });
    const none = await call('action_result', { taskId: 't1' });
    expect(none.isError).toBe(true);
    expect(none.content[0]?.text).toMatch(/^ERROR: Missing one of --result/);
  });

  it('gives bad arguments back as a tool error, without running anything', async () => {
    const unknown = await call('validate', { from: 'todo', to: 'done', verbose: true });
    expect(unknown).toMatchObject({ isError: true });
    expect(unknown.content[0]?.text).toBe("ERROR: unknown argument 'verbose'");
    const missing = await call('task_show', {});
    expect(missing.content[0]?.text).toBe("ERROR: missing argument 'taskId'");
    const dashed = await call('context_note', { taskId: '--help', text: 'x' });
    expect(dashed.isError).toBe(true);
    // A value that looks like a flag stays a value: the task '--help' does not exist.
    expect(dashed.content[0]?.text).toBe('ERROR: [not_found] Task --help not found');
    await expect(client.callTool({ name: 'no_such_tool', arguments: {} })).rejects.toThrow(
      /Unknown tool/,
    );
  });

  it('keeps answering while a sleep blocks, and the sleep ends on a wake', async () => {
    const sleeping = call('sleep', { agentId: 'a1', timeout: '30' });
    // The sleep is recorded before the call blocks; wait until creation is refused.
    let idle: ToolResult | undefined;
    for (let i = 0; i < 50; i++) {
      idle = await call('task_create', { taskId: `t${i}`, agentId: 'a1', type: 'x', ...ADMISSION });
      if (idle.isError) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(idle?.structuredContent).toMatchObject({ kind: 'idle' });
    expect((await call('wake', { agentId: 'a1' })).isError).toBe(false);
    const slept = await sleeping;
    expect(slept.isError).toBe(false);
    expect(slept.content[0]?.text).toMatch(/"event":"wake".*"reason":"woken"/s);
  });
});

describe('exec-kernel mcp, hostile arguments (issue 11)', () => {
  const invalid = (result: ToolResult, line: string, field: string) => {
    expect(result.isError).toBe(true);
    expect(result.content[0]?.text).toBe(line);
    expect(result.structuredContent).toMatchObject({
      kind: 'invalid_input',
      code: 'INVALID_INPUT',
      details: { field },
    });
  };

  it('says a negative count must not be negative, and refuses counts past the maximum', async () => {
    await call('task_create', { taskId: 't1', agentId: 'a1', type: 'feature', ...ADMISSION });
    invalid(
      await call('step', { taskId: 't1', count: -5 }),
      'ERROR: [invalid_input] Invalid --count: must not be negative',
      '--count',
    );
    invalid(
      await call('step', { taskId: 't1', count: 1e21 }),
      'ERROR: [invalid_input] Invalid --count: must be at most 1000000000',
      '--count',
    );
    invalid(
      await call('check_budget', { taskId: 't1', maxSteps: '1e20' }),
      'ERROR: [invalid_input] Invalid --max-steps: must be at most 1000000000',
      '--max-steps',
    );
    expect((await call('step', { taskId: 't1', count: '2' })).structuredContent).toMatchObject({
      stepsTaken: 2,
    });
  });

  it('applies the id rule to every id, as the CLI does', async () => {
    invalid(
      await call('task_create', {
        taskId: 'a\nCREATED: x',
        agentId: 'a1',
        type: 'f',
        ...ADMISSION,
      }),
      'ERROR: [invalid_input] Invalid task id: must not contain control characters',
      'task id',
    );
    invalid(
      await call('task_create', { taskId: 't1', agentId: '', type: 'f', ...ADMISSION }),
      'ERROR: [invalid_input] Invalid agent id: must not be empty',
      'agent id',
    );
    invalid(
      await call('check_loop', { taskId: 't', agentId: 'a', taskType: 'x'.repeat(100_000) }),
      'ERROR: [invalid_input] Invalid task type: must be at most 200 characters, got 100000',
      'task type',
    );
    expect((await call('task_list')).structuredContent).toEqual({ tasks: [] });
  });

  it('refuses arguments of the wrong JSON type without running anything', async () => {
    invalid(
      await call('task_show', { taskId: 42 }),
      'ERROR: [invalid_input] Invalid taskId: must be a string',
      'taskId',
    );
    invalid(
      await call('task_create', { taskId: 't1', agentId: 'a', type: 'f', title: { a: 1 } }),
      'ERROR: [invalid_input] Invalid title: must be a string',
      'title',
    );
    invalid(
      await call('step', { taskId: 't1', count: true }),
      'ERROR: [invalid_input] Invalid count: must be a number',
      'count',
    );
    invalid(
      await call('step', { taskId: 't1', count: 'abc' }),
      'ERROR: [invalid_input] Invalid --count: must be a whole number',
      '--count',
    );
    invalid(
      await call('task_claim', { type: [1] }),
      'ERROR: [invalid_input] Invalid type: must be a list of strings',
      'type',
    );
    expect((await call('validate', { from: 'todo', to: 'done', json: 'yes' })).content[0]).toEqual({
      type: 'text',
      text: "ERROR: unknown argument 'json'",
    });
  });

  it('passes a value that starts with a dash as a value', async () => {
    await call('task_create', { taskId: 't1', agentId: 'a1', type: 'feature', ...ADMISSION });
    const moved = await call('task_transition', {
      taskId: 't1',
      state: 'in_progress',
      comment: '-3 is not a flag',
    });
    expect(moved.isError).toBe(false);
    const shown = JSON.parse((await cli(dir, ['task', 'show', 't1', '--json'])).stdout);
    expect(shown.history.at(-1)).toMatchObject({ to: 'in_progress', reason: '-3 is not a flag' });
  });

  it('describes the rules in the input schemas: id lengths, number ranges', async () => {
    const { tools } = await client.listTools();
    const schema = (name: string) =>
      tools.find((t) => t.name === name)?.inputSchema.properties as Record<string, unknown>;
    expect(schema('task_create').taskId).toMatchObject({
      type: 'string',
      minLength: 1,
      maxLength: 200,
    });
    expect(schema('step').count).toMatchObject({ type: 'integer', minimum: 1, maximum: 1e9 });
    expect(schema('sleep').timeout).toMatchObject({ type: 'number', exclusiveMinimum: 0 });
    expect(schema('task_create').title).toMatchObject({ type: 'string', maxLength: 1000 });
  });
});

describe('exec-kernel mcp, raw protocol', () => {
  it('answers bad JSON, unknown methods and batches per JSON-RPC, and ends with stdin', async () => {
    const child = spawn(process.execPath, [BIN, 'mcp'], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', HOME: dir },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const replies = createInterface({ input: child.stdout });
    const next = () =>
      new Promise<unknown>((resolve) => replies.once('line', (l) => resolve(JSON.parse(l))));
    const exchange = async (line: string) => {
      const reply = next();
      child.stdin.write(`${line}\n`);
      return await reply;
    };
    expect(await exchange('{not json')).toEqual({
      jsonrpc: '2.0',
      id: null,
      error: { code: -32700, message: 'Parse error: not JSON' },
    });
    expect(await exchange('{"jsonrpc":"2.0","id":7,"method":"resources/list"}')).toMatchObject({
      id: 7,
      error: { code: -32601 },
    });
    expect(
      await exchange(
        '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},' +
          '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"validate","arguments":{"from":"todo","to":"in_progress"}}}]',
      ),
    ).toEqual([
      { jsonrpc: '2.0', id: 1, result: {} },
      {
        jsonrpc: '2.0',
        id: 2,
        result: expect.objectContaining({
          isError: false,
          structuredContent: {
            valid: true,
            from: 'todo',
            to: 'in_progress',
            reason: 'Work started',
          },
        }),
      },
    ]);
    // A message past 4 MiB is refused as it streams in, and the next one is answered as usual.
    const refused = next();
    for (let i = 0; i < 5; i++) child.stdin.write(`{"pad":"${'x'.repeat(1024 * 1024)}`);
    child.stdin.write('"}\r\n');
    expect(await refused).toEqual({
      jsonrpc: '2.0',
      id: null,
      error: { code: -32600, message: 'Invalid request: a message longer than 4194304 bytes' },
    });
    expect(await exchange('{"jsonrpc":"2.0","id":9,"method":"ping"}')).toEqual({
      jsonrpc: '2.0',
      id: 9,
      result: {},
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.stdin.end();
    expect(await exited).toBe(0);
  });
});
