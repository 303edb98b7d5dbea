import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { got, numberArg, stringFlag, textArg } from '../args.js';
import { type Command, UsageError } from '../context.js';
import { quote } from '../render.js';
import { configFor } from '../services.js';

/**
 * The admin token: `EXEC_KERNEL_COORDINATION_ADMIN_TOKEN`, else the one kept beside the database
 * (created on first start, readable by the owner only), else a new one for a memory database.
 */
function adminToken(
  env: Record<string, string | undefined>,
  db: string,
): { token: string; where: string } {
  const fromEnv = env.EXEC_KERNEL_COORDINATION_ADMIN_TOKEN;
  if (fromEnv !== undefined && fromEnv !== '')
    return { token: fromEnv, where: 'EXEC_KERNEL_COORDINATION_ADMIN_TOKEN' };
  const token = `eka_${randomBytes(24).toString('base64url')}`;
  if (!db.startsWith('sqlite:'))
    return {
      token,
      where: 'printed below (set EXEC_KERNEL_COORDINATION_ADMIN_TOKEN to choose it)',
    };
  const file = join(dirname(resolve(db.slice('sqlite:'.length))), 'coordination.admin-token');
  if (existsSync(file)) return { token: readFileSync(file, 'utf8').trim(), where: file };
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return { token, where: file };
}

// Why a service could not listen, for the errors that are the machine's and not a bug.
const LISTEN_PROBLEMS: Record<string, string> = {
  EADDRINUSE: 'the port is in use',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'the address is not one of this machine',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name could not be resolved (try again)',
  EAI_FAIL: 'the host name does not resolve',
};

/**
 * Turns a listen failure (port in use, unknown host) into a one-line usage error: the user can fix
 * it, it is not an internal error. Anything else is passed on as it is.
 */
function listenFailure(host: string, port: number): (error: unknown) => never {
  return (error) => {
    const code = (error as NodeJS.ErrnoException).code;
    const problem = code === undefined ? undefined : LISTEN_PROBLEMS[code];
    if (problem === undefined) throw error;
    throw new UsageError(`Cannot listen on ${quote(host)} port ${port}: ${problem} (${code})`, {
      pointToHelp: false,
    });
  };
}

/** The service package, installed beside the CLI (it is an optional peer: it brings a native SQLite driver). */
async function loadService(): Promise<typeof import('@exec-kernel/coordination')> {
  try {
    return await import('@exec-kernel/coordination');
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (
      (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') &&
      String(error).includes('@exec-kernel/coordination')
    ) {
      throw new UsageError(
        'serve needs the coordination service installed beside the CLI: npm install -g @exec-kernel/coordination',
        { pointToHelp: false },
      );
    }
    throw error;
  }
}

export const serve: Command = {
  usage: `Usage: exec-kernel serve [--db <database>] [--host <host>] [--port <port>] [--durability normal|full]
                          [--headers-timeout <s>] [--request-timeout <s>] [--idle-timeout <s>]

Runs the coordination service: a shared task queue that several agents (on one machine or many)
use, with every exec-kernel rule applied server-side. Prints where it listens; SIGTERM or SIGINT
stops it gracefully (requests in flight finish, leases are kept).

Databases:
  sqlite:<file>       the embedded default, one service process per file
                      (default: coordination.db beside store.path)
  postgres://…        PostgreSQL, for several service instances on one database
  memory              nothing kept: tests and throwaway demos

Options:
  --host <host>       default 127.0.0.1
  --port <port>       default 7420 (0 picks a free port)
  --durability full   SQLite: synchronous=FULL, where power loss matters
                      (default normal: a crash of the service loses nothing)
  --durability normal PostgreSQL: synchronous_commit=off, faster commits; a crash of
                      the database server may lose its last moments of work
                      (default: the server's own setting)
  --headers-timeout <s>  longest wait for a request's headers (default 10)
  --request-timeout <s>  longest wait for a whole request, body included (default 30)
  --idle-timeout <s>     longest a connection may send and read nothing (default 90)

The admin token comes from EXEC_KERNEL_COORDINATION_ADMIN_TOKEN, else from (or into) the file
coordination.admin-token beside the SQLite database. Agents get theirs from POST /v1/agents.
`,
  options: {
    db: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
    durability: { type: 'string' },
    'headers-timeout': { type: 'string' },
    'request-timeout': { type: 'string' },
    'idle-timeout': { type: 'string' },
  },
  positionals: { min: 0, max: 0, names: '' },
  args: {
    db: textArg('--db', 4096),
    // An empty host would make node listen on every interface, not the 127.0.0.1 default.
    host: textArg('--host', 255),
    port: numberArg({ integer: true, max: 65_535 }),
    // Seconds, up to a day: past that a timeout protects nothing.
    'headers-timeout': numberArg({ exclusiveMin: true, max: 86_400 }),
    'request-timeout': numberArg({ exclusiveMin: true, max: 86_400 }),
    'idle-timeout': numberArg({ exclusiveMin: true, max: 86_400 }),
  },
  async run(ctx) {
    const durability = stringFlag(ctx.values, 'durability');
    if (durability !== undefined && durability !== 'normal' && durability !== 'full') {
      throw new UsageError(`--durability must be normal or full, ${got(durability)}`);
    }
    const host = stringFlag(ctx.values, 'host') ?? '127.0.0.1';
    if (host.trim() === '') throw new UsageError('--host must not be empty');
    const port = ctx.numbers.port ?? 7420;
    const ms = (flag: string) => {
      const seconds = ctx.numbers[flag];
      return seconds === undefined ? undefined : Math.ceil(seconds * 1000);
    };
    const { config, storePath } = await configFor(ctx);
    const db =
      stringFlag(ctx.values, 'db') ?? `sqlite:${join(dirname(storePath), 'coordination.db')}`;
    const { token, where } = adminToken(ctx.io.env, db);
    const { startCoordinationServer } = await loadService();
    const server = await startCoordinationServer({
      db,
      durability,
      adminToken: token,
      host,
      port,
      maxDepth: config.lifecycle.maxDepth,
      admissionRequired: config.admission.required,
      budgetDefaults: config.budget,
      warnAt: config.budget.warnAt,
      idleTimeoutSeconds: config.idle.defaultTimeoutSeconds,
      actionRules: config.actions,
      headersTimeoutMs: ms('headers-timeout'),
      requestTimeoutMs: ms('request-timeout'),
      idleTimeoutMs: ms('idle-timeout'),
    }).catch(listenFailure(host, port));
    const location = server.service.storage.location;
    ctx.out.progress({
      line: `LISTENING: ${server.url} (${location})`,
      data: { event: 'listening', url: server.url, db: location },
    });
    ctx.out.warn(`admin token: ${where}`);
    if (where.startsWith('printed')) ctx.out.warn(token);

    await new Promise<void>((done) => {
      if (ctx.io.signal === undefined) return;
      if (ctx.io.signal.aborted) done();
      ctx.io.signal.addEventListener('abort', () => done(), { once: true });
    });
    await server.close();
    return {
      line: 'STOPPED: requests in flight finished; leases kept',
      data: { event: 'stopped' },
    };
  },
};
