import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** The built binary, as users run it. */
export const BIN: string = resolve(import.meta.dirname, '../dist/bin.cjs');

export interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

/** A scratch project folder (with a `.git`, so config search stops there). */
export async function scratch(): Promise<{ dir: string; done: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'exec-kernel-cli-'));
  await mkdir(join(dir, '.git'));
  return { dir, done: () => rm(dir, { recursive: true, force: true }) };
}

/** Runs `exec-kernel <args>` in `cwd` and collects its output and exit status. */
export function cli(cwd: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { cwd, env: { PATH: process.env.PATH ?? '', HOME: cwd, ...env } },
      (error, stdout, stderr) => {
        const status = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
        done({ status, stdout, stderr });
      },
    );
  });
}

/** Starts `exec-kernel <args>` without waiting for it. */
export function start(cwd: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: cwd, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Resolves with the first `count` lines a child prints on stdout. */
export function lines(child: ChildProcess, count: number): Promise<string[]> {
  return new Promise((done, fail) => {
    let text = '';
    let errors = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const got = text.split('\n').filter((l) => l !== '');
      if (got.length >= count) done(got.slice(0, count));
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      errors += chunk.toString();
    });
    child.once('exit', () => fail(new Error(`exited after printing: ${text}${errors}`)));
  });
}

/** Resolves with a child's exit status. */
export function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((done) => {
    if (child.exitCode !== null) done(child.exitCode);
    else child.once('exit', (code) => done(code));
  });
}

/** The admission flags of a complete case. */
export const ADMISSION: string[] = [
  '--consumer',
  'end users',
  '--pain-point',
  'login is slow',
  '--expected-value',
  'faster login',
  '--validation-path',
  'benchmark',
];
