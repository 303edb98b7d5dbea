import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ADMISSION, BIN, cli, type Run, scratch } from './helpers.js';

// Issue 11: the CLI tried as an attacker would, each case on a spawned `exec-kernel`.

let dir = '';
let done: () => Promise<void> = async () => {};
beforeEach(async () => {
  ({ dir, done } = await scratch());
});
afterEach(() => done());

const createAnswering = (id: string, admission: string[], more: string[]) =>
  cli(dir, ['task', 'create', id, '--agent-id', 'a1', '--type', 'feature', ...admission, ...more]);
const create = (id: string, ...more: string[]) => createAnswering(id, ADMISSION, more);
/** `create`, with `validationPath` as the admission case's last answer. */
const createValidatedBy = (id: string, validationPath: string, ...more: string[]) =>
  createAnswering(id, [...ADMISSION.slice(0, -1), validationPath], more);

/** A refusal of bad input: one line on stderr, nothing on stdout, exit 1. */
function refused(run: Run, line: string): void {
  expect(run).toEqual({ status: 1, stdout: '', stderr: `${line}\n` });
}

const LONG = 'x'.repeat(100_000);

/** The characters of `text` a terminal would act on: ESC, CSI and the line separator. */
const raw = (text: string) => [...text].filter((c) => '\u001b\u009b\u2028'.includes(c));

describe('ids: one rule for every id and type argument of every command', () => {
  it.each([
    ['empty', '', 'must not be empty'],
    ['blank', '   ', 'must not be blank'],
    ['with a newline', 'a\nCREATED: fake', 'must not contain control characters'],
    ['with an ANSI escape', '\u001b[31mred', 'must not contain control characters'],
    ['with a bidi override', 'evil\u202etxt', 'must not contain control characters'],
    ['with a leading space', ' t1', 'must not start or end with whitespace'],
    ['..', '..', "must not be '..'"],
    ['100,000 characters long', LONG, 'must be at most 200 characters, got 100000'],
  ])('task create refuses an id %s in one line, and creates nothing', async (_, id, problem) => {
    refused(await create(id), `ERROR: [invalid_input] Invalid task id: ${problem}`);
    expect((await cli(dir, ['task', 'list'])).stdout).toBe('No tasks.\n');
  });

  it('gives the Violation with --json', async () => {
    const run = await create('a\nb', '--json');
    expect(run.status).toBe(1);
    expect(run.stderr).toBe(
      'ERROR: [invalid_input] Invalid task id: must not contain control characters\n',
    );
    expect(JSON.parse(run.stdout)).toMatchObject({
      kind: 'invalid_input',
      code: 'INVALID_INPUT',
      message: 'Invalid task id: must not contain control characters',
      details: { field: 'task id', problem: 'must not contain control characters' },
    });
  });

  const everyIdArgument: Array<[string[], string]> = [
    [['task', 'create', 't1', '--agent-id', '', '--type', 'x', ...ADMISSION], 'agent id'],
    [['task', 'create', 't1', '--agent-id', 'a', '--type', ' ', ...ADMISSION], 'task type'],
    [
      ['task', 'create', 't1', '--agent-id', 'a', '--type', 'x', '--parent-task-id', 'p\n'],
      'parent task id',
    ],
    [
      ['task', 'create', 't1', '--agent-id', 'a', '--type', 'x', '--created-by-task-id', LONG],
      'creator task id',
    ],
    [['task', 'transition', '', 'done'], 'task id'],
    [['task', 'transition', 't1', 'do\u001bne'], 'state'],
    [['task', 'transition', 't1', 'done', '--agent-id', '..'], 'agent id'],
    [['task', 'transition', 't1', 'blocked', '--blocked-by', 'a\u0007b'], 'blocking task id'],
    [['task', 'transition', 't1', 'in_review', '--reviewer', ''], 'reviewer'],
    [['task', 'show', '\u2028'], 'task id'],
    [['task', 'list', '--agent-id', 'a\rb'], 'agent id'],
    [['task', 'list', '--state', LONG], 'state'],
    [['task', 'checkout', '', '--backend', 'coordination'], 'task id'],
    [['task', 'release', 't1\n', '--backend', 'coordination'], 'task id'],
    [['task', 'claim', '--type', '', '--backend', 'coordination'], 'task type'],
    [['step', 'a\nOK: t1 step 1 of 50'], 'task id'],
    [['context', 'get', ''], 'task id'],
    [['context', 'get', 't1', 'k\u001b'], 'context key'],
    [['context', 'set', 't1', '', 'v'], 'context key'],
    [['context', 'note', 't1', 'hello', '--author', 'me\n'], 'author'],
    [['check-loop', '', 'a', 'x'], 'task id'],
    [['check-loop', 't', 'a\n', 'x'], 'agent id'],
    [['check-loop', 't', 'a', LONG], 'task type'],
    [['check-loop', 't', 'a', 'x', '--parent-task-id', ''], 'parent task id'],
    [['check-loop', 't', 'a', 'x', '--created-by-task-id', '.'], 'creator task id'],
    [['check-budget', 'a\u001b[2J'], 'task id'],
    [['sleep', '--agent-id', '', '--timeout', '1'], 'agent id'],
    [['sleep', '--agent-id', 'a', '--timeout', '1', '--reason', 'x\ny'], 'sleep reason'],
    [['wake', '--agent-id', 'a\u0085'], 'agent id'],
    [['validate', '', 'todo'], 'state'],
  ];
  // Titles show each argument cut short: one of them is 100,000 characters.
  const title = (args: string[]) => args.map((a) => JSON.stringify(a).slice(0, 24)).join(' ');
  for (const [args, field] of everyIdArgument) {
    it(`${title(args)} is refused before anything runs: Invalid ${field}`, async () => {
      const run = await cli(dir, args);
      expect(run.status).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(
        new RegExp(`^ERROR: \\[invalid_input\\] Invalid ${field}: [^\\n]+\\n$`),
      );
    });
  }
});

describe('numbers: safe values in a sane range', () => {
  it.each([
    [['check-budget', 't', '--max-steps', '1e20'], '--max-steps: must be at most 1000000000'],
    [['check-budget', 't', '--steps', '1e20'], '--steps: must be at most 1000000000'],
    [['check-budget', 't', '--steps', '-3'], '--steps: must not be negative'],
    [['check-budget', 't', '--steps', '2.5'], '--steps: must be a whole number'],
    [['check-budget', 't', '--steps', '0x10'], '--steps: must be a whole number'],
    [['check-budget', 't', '--elapsed', '-1'], '--elapsed: must not be negative'],
    [['check-budget', 't', '--elapsed', 'Infinity'], '--elapsed: must be a number'],
    [['check-budget', 't', '--max-duration', '1e10'], '--max-duration: must be at most 1000000000'],
    [['check-budget', 't', '--tokens', '1e16'], '--tokens: must be at most 1000000000000000'],
    [['check-budget', 't', '--max-tokens', 'NaN'], '--max-tokens: must be a whole number'],
    [['check-budget', 't', '--cost', '-0.5'], '--cost: must not be negative'],
    [['check-budget', 't', '--max-cost', '1e10'], '--max-cost: must be at most 1000000000'],
    [['check-budget', 't', '--steps='], '--steps: must not be empty'],
    [['check-loop', 't', 'a', 'x', '--max-depth', '10001'], '--max-depth: must be at most 10000'],
    [['step', 't1', '--count', '1e20'], '--count: must be at most 1000000000'],
    [['step', 't1', '--count', '0'], '--count: must be at least 1'],
    [['step', 't1', '--count', '-3'], '--count: must not be negative'],
    [['sleep', '--agent-id', 'a', '--timeout', '-1'], '--timeout: must not be negative'],
    [['sleep', '--agent-id', 'a', '--timeout', '0'], '--timeout: must be greater than 0'],
    [['sleep', '--agent-id', 'a', '--timeout', '1e20'], '--timeout: must be at most 1000000000'],
    [['serve', '--port', '99999'], '--port: must be at most 65535'],
    [['serve', '--port', '-1'], '--port: must not be negative'],
    [['serve', '--port', '80.5'], '--port: must be a whole number'],
    [
      ['task', 'claim', '--wait', '1e9', '--backend', 'coordination'],
      '--wait: must be at most 86400',
    ],
    [
      ['task', 'claim', '--lease-seconds', '0', '--backend', 'coordination'],
      '--lease-seconds: must be greater than 0',
    ],
    [
      ['task', 'checkout', 't1', '--lease-seconds', '-5', '--backend', 'coordination'],
      '--lease-seconds: must not be negative',
    ],
  ])('%j: Invalid %s', async (args, problem) => {
    refused(await cli(dir, args), `ERROR: [invalid_input] Invalid ${problem}`);
  });

  it('step past the limit still reports a sane percentage: 1e20 never reaches the budget', async () => {
    await create('t1');
    refused(
      await cli(dir, ['step', 't1', '--count', '1e20']),
      'ERROR: [invalid_input] Invalid --count: must be at most 1000000000',
    );
    expect((await cli(dir, ['step', 't1'])).stdout).toBe('OK: t1 step 1 of 50 (49 left)\n');
    // The numbers people type still pass.
    expect(await cli(dir, ['check-budget', 't', '--steps', '5', '--max-steps', '1e1'])).toEqual({
      status: 0,
      stdout: 'OK: 5 steps, 0s elapsed (max 10 steps, 1800s)\n',
      stderr: '',
    });
    expect((await cli(dir, ['check-budget', 't', '--elapsed=1.5', '--cost', '.25'])).status).toBe(
      0,
    );
  });

  it('gives the Violation of a bad number with --json', async () => {
    const run = await cli(dir, ['check-budget', 't', '--steps', '-3', '--json']);
    expect(run.status).toBe(1);
    expect(JSON.parse(run.stdout)).toMatchObject({
      kind: 'invalid_input',
      details: { field: '--steps', problem: 'must not be negative' },
    });
  });
});

describe('config values past the maximums', () => {
  it('names file, line, column and key for max_steps: 1e20, and step does not crash', async () => {
    const file = join(dir, '.exec-kernel.yml');
    await writeFile(file, 'budget:\n  max_steps: 1e20\n');
    refused(
      await cli(dir, ['config', 'validate']),
      `ERROR: [config] Invalid config ${file}: budget.max_steps (2:14) must be at most 1000000000, got 100000000000000000000`,
    );
    expect((await create('t1')).status).toBe(1);
  });

  it('refuses 1e20, -1, NaN and Infinity from the environment in one line, even for sleep', async () => {
    const cases: Array<[string, string, string]> = [
      [
        'EXEC_KERNEL_BUDGET_MAX_STEPS',
        '1e20',
        'must be at most 1000000000, got 100000000000000000000',
      ],
      [
        'EXEC_KERNEL_IDLE_DEFAULT_TIMEOUT_SECONDS',
        '1e20',
        'must be at most 1000000000, got 100000000000000000000',
      ],
      [
        'EXEC_KERNEL_LIFECYCLE_MAX_HEAP_SIZE',
        '1e20',
        'must be at most 1000000, got 100000000000000000000',
      ],
      ['EXEC_KERNEL_BUDGET_MAX_STEPS', '-1', 'must be a non-negative integer, got -1'],
      ['EXEC_KERNEL_BUDGET_MAX_DEPTH', 'NaN', 'must be a non-negative integer, got "NaN"'],
      [
        'EXEC_KERNEL_BUDGET_MAX_TOKENS',
        'Infinity',
        'must be a non-negative integer or null, got "Infinity"',
      ],
    ];
    for (const [name, value, problem] of cases) {
      refused(
        await cli(dir, ['sleep', '--agent-id', 'a1'], { [name]: value }),
        `ERROR: [config] Invalid config from the environment: ${name} ${problem}`,
      );
    }
  });

  it('says YAML nested 200,000 deep is nested too deep, not that it has too many aliases', async () => {
    const file = join(dir, '.exec-kernel.yml');
    await writeFile(file, `budget:\n  max_steps: ${'['.repeat(200_000)}${']'.repeat(200_000)}\n`);
    const run = await cli(dir, ['config', 'validate']);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(
      new RegExp(`^ERROR: \\[config\\] Invalid YAML in ${file} \\(2:\\d+\\): nested too deep\\n$`),
    );
  });
});

describe('the config file itself', () => {
  it('refuses one larger than 1 MiB without parsing it, a directory, and an unreadable one', async () => {
    await writeFile(join(dir, '.exec-kernel.yml'), `# ${'x'.repeat(2 * 1024 * 1024)}\n`);
    refused(
      await cli(dir, ['config', 'validate']),
      `ERROR: [config] Config file ${join(dir, '.exec-kernel.yml')} is too large: 2097155 bytes (at most 1048576)`,
    );

    await mkdir(join(dir, 'conf'));
    refused(
      await cli(dir, ['config', 'show', '--config', 'conf']),
      `ERROR: [config] Config file is not a file: ${join(dir, 'conf')}`,
    );

    const file = join(dir, 'secret.yml');
    await writeFile(file, 'budget: { max_steps: 5 }\n');
    await chmod(file, 0o000);
    await chmod(dir, 0o755);
    // As root every file is readable: run the CLI as nobody then.
    const asRoot = process.getuid?.() === 0;
    const run = await new Promise<Run>((resolve) => {
      execFile(
        process.execPath,
        [BIN, 'config', 'validate', '--config', file],
        {
          cwd: dir,
          env: { PATH: process.env.PATH ?? '', HOME: dir },
          ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
        },
        (error, stdout, stderr) =>
          resolve({ status: error === null ? 0 : Number(error.code), stdout, stderr }),
      );
    });
    refused(run, `ERROR: [config] Cannot read config file ${file} (EACCES)`);
  });
});

describe('serve: usage and environment errors in one line, exit 1', () => {
  it('refuses an unresolvable host, an address not on this machine and an empty host', async () => {
    refused(
      await cli(dir, ['serve', '--db', 'memory', '--host', 'no-such-host.invalid', '--port', '0']),
      "ERROR: Cannot listen on 'no-such-host.invalid' port 0: the host name does not resolve (ENOTFOUND)",
    );
    refused(
      await cli(dir, ['serve', '--db', 'memory', '--host', '192.0.2.1', '--port', '0']),
      "ERROR: Cannot listen on '192.0.2.1' port 0: the address is not one of this machine (EADDRNOTAVAIL)",
    );
    refused(
      await cli(dir, ['serve', '--db', 'memory', '--host=', '--port', '0']),
      "ERROR: --host must not be empty. Run 'exec-kernel serve --help' for usage.",
    );
  });

  it('refuses a port in use', async () => {
    const holder = createServer();
    holder.listen(0, '127.0.0.1');
    await once(holder, 'listening');
    const { port } = holder.address() as { port: number };
    try {
      refused(
        await cli(dir, ['serve', '--db', 'memory', '--port', String(port)]),
        `ERROR: Cannot listen on '127.0.0.1' port ${port}: the port is in use (EADDRINUSE)`,
      );
    } finally {
      holder.close();
    }
  });
});

describe('usage', () => {
  it('prints a short usage on stderr without arguments, and the full help on stdout with --help', async () => {
    refused(
      await cli(dir, []),
      "Usage: exec-kernel <command> [arguments] [--json] [--config <file>]\nRun 'exec-kernel --help' for the commands.",
    );
    const help = await cli(dir, ['--help']);
    expect(help.status).toBe(0);
    expect(help.stderr).toBe('');
    expect(help.stdout).toContain('  task create         create a task');
    expect(help.stdout).toContain('  escalation resolve  resolve an escalation');
  });

  it('answers a group without its command in one line', async () => {
    refused(
      await cli(dir, ['task']),
      "ERROR: Missing command: exec-kernel task <create|transition|show|list|checkout|claim|release>. Run 'exec-kernel task --help'.",
    );
    expect((await cli(dir, ['context', '--help'])).stdout).toContain('exec-kernel context get');
  });

  it('refuses a single-valued flag given twice, rather than pick one', async () => {
    refused(
      await create('t1', '--agent-id', 'a2'),
      "ERROR: Option '--agent-id' given more than once. Run 'exec-kernel task create --help' for usage.",
    );
    expect((await cli(dir, ['task', 'list'])).stdout).toBe('No tasks.\n');
  });

  it('echoes unknown commands and flags escaped and cut short', async () => {
    refused(
      await cli(dir, ['\u001b[2Jx'.repeat(20)]),
      `ERROR: Unknown command '${'\\u001b[2Jx'.repeat(7)}\\u001b[...'. Run 'exec-kernel --help'.`,
    );
    refused(
      await cli(dir, ['validate', 'todo', 'done', '--x\u001b[31m']),
      "ERROR: Unknown option '--x\\u001b[31m'. Run 'exec-kernel validate --help' for usage.",
    );
    refused(
      await cli(dir, ['wake', '--agent-id', 'a', '--reason', 'no\nway']),
      "ERROR: --reason must be woken or task_available, got 'no\\nway'. Run 'exec-kernel wake --help' for usage.",
    );
  });

  it('says a value that starts with a dash needs --flag=value', async () => {
    refused(
      await cli(dir, ['task', 'transition', 't1', 'done', '--comment', '-x']),
      "ERROR: Option '--comment' needs a value; for one that starts with '-', write --comment=<value>. Run 'exec-kernel task transition --help' for usage.",
    );
  });

  it('reads --json after -- as a word, not as the flag', async () => {
    await create('t1');
    expect(await cli(dir, ['context', 'note', 't1', '--', '--json'])).toEqual({
      status: 0,
      stdout: 'OK: note added to t1\n',
      stderr: '',
    });
  });
});

describe('user text in output: one line per result, no escape reaches the terminal', () => {
  it('refuses control characters in titles, comments, notes and admission answers', async () => {
    const evil = 'x\u001b[2J\nCREATED: fake';
    const problem = 'must not contain control characters';
    refused(
      await create('t1', '--title', evil),
      `ERROR: [invalid_input] Invalid title: ${problem}`,
    );
    refused(
      await createValidatedBy('t1', evil),
      `ERROR: [invalid_input] Invalid --validation-path: ${problem}`,
    );
    expect((await create('t1', '--title', 'two\nlines\tand a tab')).status).toBe(0);
    refused(
      await cli(dir, ['task', 'transition', 't1', 'in_progress', '--comment', evil]),
      `ERROR: [invalid_input] Invalid comment: ${problem}`,
    );
    refused(
      await cli(dir, ['context', 'note', 't1', evil]),
      `ERROR: [invalid_input] Invalid note: ${problem}`,
    );
  });

  it('escapes titles, comments, notes, admission answers and context values it did not write', async () => {
    const evil = 'x\u001b[2J\nCREATED: fake\u009b\u2028!';
    const shown = 'x\\u001b[2J\\nCREATED: fake\\u009b\\u2028!';
    // Made with plain text, then given what another tool (or a hand edit) could put in the file.
    const mark = 'PLACEHOLDER';
    expect((await createValidatedBy('t1', mark, '--title', mark)).stdout).toBe(
      'CREATED: t1 state=todo depth=0\n',
    );
    await cli(dir, ['task', 'transition', 't1', 'in_progress', '--comment', mark]);
    await cli(dir, ['context', 'note', 't1', mark]);
    await cli(dir, ['context', 'set', 't1', 'k', mark]);
    const stateFile = join(dir, '.exec-kernel', 'state.json');
    const text = await readFile(stateFile, 'utf8');
    expect(text.split(mark)).toHaveLength(6);
    await writeFile(stateFile, text.replaceAll(mark, JSON.stringify(evil).slice(1, -1)));

    const list = await cli(dir, ['task', 'list']);
    expect(list.stdout).toBe(`t1  in_progress  a1  feature  depth=0  steps=0/50  ${shown}\n`);
    const show = (await cli(dir, ['task', 'show', 't1'])).stdout;
    expect(raw(show)).toEqual([]);
    const lines = show.trimEnd().split('\n');
    expect(lines).toContain(`  title:     ${shown}`);
    expect(lines).toContain(`  validationPath: ${shown}`);
    expect(lines.some((l) => l.endsWith(`in_progress  ${shown}`))).toBe(true);
    expect(lines.some((l) => l.endsWith(`  ${shown}`) && l.includes('Z  x'))).toBe(true);
    expect(lines).toContain('    k="x\\u001b[2J\\nCREATED: fake\\u009b\\u2028!"');
    expect((await cli(dir, ['context', 'get', 't1'])).stdout).toBe(
      'k="x\\u001b[2J\\nCREATED: fake\\u009b\\u2028!"\n',
    );

    // JSON lines stay one line each and carry the text exactly, the C1 and separator escaped too.
    const json = await cli(dir, ['task', 'show', 't1', '--json']);
    expect(raw(json.stdout)).toEqual([]);
    expect(json.stdout.trimEnd().split('\n')).toHaveLength(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ title: evil, context: { k: evil } });
  });

  it('refuses a context value nested deeper than 64 levels or longer than 64 KiB', async () => {
    await create('t1');
    refused(
      await cli(dir, ['context', 'set', 't1', 'k', `${'['.repeat(5000)}${']'.repeat(5000)}`]),
      'ERROR: [invalid_input] Invalid context value: must not nest deeper than 64 levels',
    );
    refused(
      await cli(dir, ['context', 'set', 't1', 'k', JSON.stringify('x'.repeat(70_000))]),
      'ERROR: [invalid_input] Invalid context value: must be at most 65536 characters, got 70002',
    );
    refused(
      await create('t2', '--title', 'x'.repeat(1001)),
      'ERROR: [invalid_input] Invalid title: must be at most 1000 characters, got 1001',
    );
    // Nothing was lost: the store still reads, the task is as it was.
    expect((await cli(dir, ['context', 'get', 't1'])).stdout).toBe('(no context on t1)\n');
  });
});
