import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Where Debian and Ubuntu keep `initdb` and `pg_ctl` (off PATH), newest major first. */
const CANDIDATE_BINS = ['17', '16', '15', '14', '13'].map((v) => `/usr/lib/postgresql/${v}/bin`);

/** A PostgreSQL server of its own, in a temporary directory, for tests that stop and start it. */
export interface ThrowawayPostgres {
  /** `postgres://postgres@127.0.0.1:<port>/postgres`, trust auth (no password). */
  readonly url: string;
  readonly port: number;
  /** The temporary directory: `data/`, `server.log` and the Unix socket. */
  readonly dir: string;
  /** Whether the server is running (as far as `start` and `stop` know). */
  readonly running: boolean;
  /** `pg_ctl stop`, waiting until it is down. `fast` ends sessions; `immediate` is a crash. */
  stop(mode?: 'smart' | 'fast' | 'immediate'): Promise<void>;
  /** `pg_ctl start` on the same port and data, waiting until it accepts connections. */
  start(): Promise<void>;
  /** Stops the server (immediate) and deletes the directory. Harmless when called twice. */
  destroy(): Promise<void>;
}

/** The directory holding `initdb`, `pg_ctl` and `postgres`, or `undefined` when not installed. */
export function findPostgresBin(): string | undefined {
  const fromEnv = process.env.PG_BIN;
  for (const dir of fromEnv === undefined ? CANDIDATE_BINS : [fromEnv, ...CANDIDATE_BINS]) {
    if (existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) return dir;
  }
  return undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address !== null
          ? resolve(address.port)
          : reject(new Error('no port')),
      );
    });
  });
}

/** Every server started by this process, stopped on exit even if a test forgot to. */
const live = new Set<() => void>();
let exitHookInstalled = false;

/**
 * Creates a cluster with `initdb` in a temporary directory and starts it on a free port of
 * 127.0.0.1 (override with `port`). As root, everything runs as the `postgres` OS user, which
 * PostgreSQL requires; otherwise as the current user. The machine's own server is never touched.
 *
 * @throws Error when `initdb`/`pg_ctl` are missing (check {@link findPostgresBin} first) or the
 * server does not start; the directory is removed in that case.
 *
 * @example
 * ```ts
 * const pg = await startThrowawayPostgres();
 * try {
 *   await pg.stop('fast');
 *   await pg.start();
 * } finally {
 *   await pg.destroy();
 * }
 * ```
 */
export async function startThrowawayPostgres(
  options: { port?: number | undefined } = {},
): Promise<ThrowawayPostgres> {
  const bin = findPostgresBin();
  if (bin === undefined)
    throw new Error('PostgreSQL server binaries (initdb, pg_ctl) not found; set PG_BIN');
  const asRoot = process.getuid?.() === 0;
  const prefix = asRoot ? ['runuser', '-u', 'postgres', '--'] : [];
  const exec = (file: string, args: string[]) => {
    const [command, ...rest] = [...prefix, join(bin, file), ...args] as [string, ...string[]];
    return run(command, rest, { timeout: 60_000 });
  };
  const execSync = (file: string, args: string[]) => {
    const [command, ...rest] = [...prefix, join(bin, file), ...args] as [string, ...string[]];
    execFileSync(command, rest, { stdio: 'ignore', timeout: 30_000 });
  };

  const port = options.port ?? (await freePort());
  // The system temp directory is traversable by the postgres user; the new folder is then its own.
  const dir = await mkdtemp(join(tmpdir(), 'ek-pg-'));
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  let running = false;
  let destroyed = false;

  const stopNow = () => {
    running = false;
    if (!existsSync(join(data, 'postmaster.pid'))) return;
    try {
      execSync('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    } catch {
      // already down
    }
  };

  const instance: ThrowawayPostgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    get running() {
      return running;
    },
    async stop(mode = 'fast') {
      await exec('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '30', 'stop']);
      running = false;
    },
    async start() {
      await exec('pg_ctl', [
        '-D',
        data,
        '-l',
        log,
        '-w',
        '-t',
        '30',
        '-o',
        `-c listen_addresses=127.0.0.1 -p ${port} -c unix_socket_directories=${dir} -c fsync=off`,
        'start',
      ]);
      running = true;
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      live.delete(stopNow);
      stopNow();
      await rm(dir, { recursive: true, force: true });
    },
  };

  try {
    if (asRoot) {
      const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
      await chown(dir, uid, gid);
    }
    await exec('initdb', [
      '-D',
      data,
      '-U',
      'postgres',
      '-A',
      'trust',
      '-E',
      'UTF8',
      '--locale=C',
      '-N',
    ]);
    live.add(stopNow);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.once('exit', () => {
        for (const stop of live) stop();
      });
    }
    await instance.start();
  } catch (error) {
    await instance.destroy();
    throw error;
  }
  return instance;
}
