import { fstatSync, readFileSync, statSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { CliIO } from './context.js';

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Writes all of `text` to a file descriptor synchronously. Used instead of process.stdout, whose
 * first use loads the stream machinery: a cost every one of an agent's many short calls would pay.
 */
function writeAll(fd: number, text: string): void {
  const bytes = Buffer.from(text);
  let offset = 0;
  while (offset < bytes.length) {
    try {
      offset += writeSync(fd, bytes, offset);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') Atomics.wait(sleeper, 0, 0, 1);
      else if (code === 'EPIPE')
        return; // the reader went away; nothing left to tell
      else throw error;
    }
  }
}

/**
 * Whether `fd` is a terminal. Pipes, files and /dev/null are answered without loading node:tty
 * (which loads node:net): output sent to /dev/null is common for agents and costs nothing here.
 */
function isTerminal(fd: number): boolean {
  try {
    const stat = fstatSync(fd);
    if (!stat.isCharacterDevice()) return false;
    const devNull = statSync('/dev/null');
    if (stat.rdev === devNull.rdev) return false;
  } catch {
    return false;
  }
  return (createRequire(import.meta.url)('node:tty') as typeof import('node:tty')).isatty(fd);
}

/** The real process's streams, environment and working directory. */
export function processIO(signal?: AbortSignal): CliIO {
  let tty: boolean | undefined;
  return {
    stdout: {
      write: (text: string) => writeAll(1, text),
      get isTTY() {
        tty ??= isTerminal(1);
        return tty;
      },
    },
    stderr: { write: (text: string) => writeAll(2, text) },
    env: process.env,
    cwd: process.cwd(),
    readStdin: () => readFileSync(0, 'utf8'),
    signal,
  };
}
