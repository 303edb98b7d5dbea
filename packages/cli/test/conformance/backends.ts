import type { ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CoordinationClient } from '@exec-kernel/coordination/client';
import {
  type PaperclipServer,
  startPaperclip,
} from '../../../paperclip/test/live/paperclip-server.js';
import { lines, scratch, start } from '../helpers.js';

/** The agent every scenario acts as, by the name the scenario uses for it. */
export const AGENT = 'agent-1';

/** One backend, started for one run of the scenario. */
export interface LiveBackend {
  /** Scratch folder the CLI runs in (its state file lives there). */
  dir: string;
  /** What the CLI needs in its environment to reach the backend. */
  env: Record<string, string>;
  /** The id the backend knows the scenario's agent by. */
  agentId: string;
  /** The backend's id for a task the scenario calls `name`. */
  ref(name: string): string;
  /** Records the backend's id for `name` from a CREATED line. */
  created(name: string, line: string): void;
  /**
   * `text` with what the backend must assign itself put back into the scenario's names (ids
   * Paperclip gives issues and agents). Everything else stays as the backend wrote it.
   */
  normalise(text: string): string;
  stop(): Promise<void>;
}

/** How to start a backend: one row of the table the conformance test runs. */
export interface BackendRow {
  /** What `--backend` names it. */
  backend: 'local' | 'coordination' | 'paperclip';
  /** A label for the test title (the SQL engine, say). */
  label: string;
  /** Whether `task create <id>` keeps `<id>` (so a test can name ids, e.g. to build a cycle). */
  namesIds: boolean;
  start(): Promise<LiveBackend>;
}

/** A backend that keeps the scenario's ids as they are (the CLI's own store, the service). */
function namingBackend(
  dir: string,
  env: Record<string, string>,
  stop: () => Promise<void>,
): LiveBackend {
  return {
    dir,
    env,
    agentId: AGENT,
    ref: (name) => name,
    created: () => {},
    normalise: (text) => text,
    stop,
  };
}

export async function startLocal(): Promise<LiveBackend> {
  const { dir, done } = await scratch();
  return namingBackend(dir, {}, done);
}

const ADMIN = `conf-admin-${randomBytes(8).toString('hex')}`;

/** `exec-kernel serve` on `db`, with the scenario's agent registered. */
async function startService(
  dir: string,
  db: string,
): Promise<{ env: Record<string, string>; child: ChildProcess }> {
  const child = start(dir, ['serve', '--port', '0', '--db', db], {
    EXEC_KERNEL_COORDINATION_ADMIN_TOKEN: ADMIN,
  });
  const [line = ''] = await lines(child, 1);
  const url = /^LISTENING: (http:\/\/127\.0\.0\.1:\d+) /.exec(line)?.[1];
  if (url === undefined) throw new Error(`exec-kernel serve did not listen: ${line}`);
  const { token } = await new CoordinationClient({ url, token: ADMIN }).registerAgent(AGENT);
  return {
    child,
    env: { EXEC_KERNEL_COORDINATION_URL: url, EXEC_KERNEL_COORDINATION_TOKEN: token },
  };
}

async function stopped(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exit = new Promise((done) => child.once('exit', done));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exit;
  clearTimeout(timer);
}

export async function startCoordinationSqlite(): Promise<LiveBackend> {
  const { dir, done } = await scratch();
  const { env, child } = await startService(dir, `sqlite:${join(dir, 'queue.db')}`);
  return namingBackend(dir, env, async () => {
    await stopped(child);
    await done();
  });
}

/** The machine's PostgreSQL (trust auth, database `test`); each run gets a schema of its own. */
export const POSTGRES_URL: string =
  process.env.EXEC_KERNEL_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';

const psql = promisify(execFile);

export async function startCoordinationPostgres(): Promise<LiveBackend> {
  const { dir, done } = await scratch();
  const schema = `ek_conf_${randomBytes(8).toString('hex')}`;
  const url = new URL(POSTGRES_URL);
  url.searchParams.set('schema', schema);
  const { env, child } = await startService(dir, url.href);
  return namingBackend(dir, env, async () => {
    await stopped(child);
    await psql('psql', [POSTGRES_URL, '-qc', `drop schema if exists "${schema}" cascade`]);
    await done();
  });
}

export async function startPaperclipBackend(): Promise<LiveBackend> {
  const { dir, done } = await scratch();
  let server: PaperclipServer | undefined;
  try {
    server = await startPaperclip();
    const agent = server.agents[0];
    if (agent === undefined) throw new Error('the harness seeded no agent');
    // Writes need a live heartbeat run of the agent; a run on one issue may act on its others.
    const { body: work } = await server.board('POST', `/companies/${server.companyId}/issues`, {
      title: 'Conformance run',
      status: 'todo',
      assigneeAgentId: agent.id,
    });
    const runId = await server.issueRun(agent.id, work.id);
    const names = new Map<string, string>(); // Paperclip identifier -> scenario name
    const ids = new Map<string, string>(); // scenario name -> Paperclip identifier
    const live = server;
    return {
      dir,
      env: {
        PAPERCLIP_API_URL: live.url,
        PAPERCLIP_API_KEY: agent.apiKey,
        PAPERCLIP_AGENT_ID: agent.id,
        PAPERCLIP_COMPANY_ID: live.companyId,
        PAPERCLIP_RUN_ID: runId,
      },
      agentId: agent.id,
      ref: (name) => ids.get(name) ?? name,
      created(name, line) {
        const identifier = /^CREATED: (\S+) /.exec(line)?.[1];
        if (identifier === undefined) return;
        names.set(identifier, name);
        ids.set(name, identifier);
      },
      // Issue identifiers and the agent's UUID are Paperclip's to assign; nothing else differs.
      normalise: (text) =>
        text
          .replaceAll(/\b[A-Z]{2,}-\d+\b/g, (identifier) => names.get(identifier) ?? identifier)
          .replaceAll(agent.id, AGENT),
      async stop() {
        await live.stop();
        await done();
      },
    };
  } catch (error) {
    await server?.stop();
    await done();
    throw error;
  }
}

/** Every backend the scenario must agree on. Adding one is one line. */
// Paperclip names every issue itself (LIV-3): there the scenario's ids can only be titles.
export const BACKENDS: BackendRow[] = [
  { backend: 'local', label: 'local state file', namesIds: true, start: startLocal },
  {
    backend: 'coordination',
    label: 'coordination on SQLite',
    namesIds: true,
    start: startCoordinationSqlite,
  },
  {
    backend: 'coordination',
    label: 'coordination on PostgreSQL',
    namesIds: true,
    start: startCoordinationPostgres,
  },
  { backend: 'paperclip', label: 'live Paperclip', namesIds: false, start: startPaperclipBackend },
];
