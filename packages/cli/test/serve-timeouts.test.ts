import { connect } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cli, lines, scratch, start } from './helpers.js';

// `exec-kernel serve` passes the coordination server's timeouts on: a spawned service cuts off a
// client that never finishes its headers, and refuses timeouts that cannot work.

let dir = '';
let done: () => Promise<void> = async () => {};
beforeAll(async () => {
  ({ dir, done } = await scratch());
});
afterAll(() => done());

it('serve --headers-timeout answers 408 to a client that never finishes its headers', async () => {
  const child = start(
    dir,
    [
      'serve',
      '--db',
      'memory',
      '--port',
      '0',
      '--headers-timeout',
      '0.3',
      '--request-timeout',
      '0.5',
      '--idle-timeout',
      '90',
    ],
    { EXEC_KERNEL_COORDINATION_ADMIN_TOKEN: 'serve-timeouts-admin' },
  );
  try {
    const [line] = await lines(child, 1);
    const match = /^LISTENING: http:\/\/127\.0\.0\.1:(\d+) /.exec(line as string);
    expect(match).not.toBeNull();
    const socket = connect({ host: '127.0.0.1', port: Number(match?.[1]) });
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
    });
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    await closed;
    expect(received).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
  } finally {
    child.kill('SIGTERM');
  }
});

it('serve refuses an idle timeout no longer than the longest long-poll, in one line', async () => {
  const run = await cli(dir, ['serve', '--db', 'memory', '--port', '0', '--idle-timeout', '30']);
  expect(run.status).toBe(1);
  expect(run.stderr.trim().split('\n')).toHaveLength(1);
  expect(run.stderr).toContain('idleTimeoutMs (30000) must be longer than the longest long-poll');
  const zero = await cli(dir, ['serve', '--db', 'memory', '--port', '0', '--request-timeout', '0']);
  expect(zero.status).toBe(1);
  expect(zero.stderr).toContain('--request-timeout');
});
