// The Paperclip adapter's overhead per call: the same endpoint through the adapter and through a
// bare fetch with the same headers, against a live Paperclip server (the test harness in
// packages/paperclip/test/live starts it; the first run installs it). Calls alternate between
// the two so machine noise hits both alike; the figure is the median of the paired differences.
// Goal: under 1 ms added. transitionTask's extra status read is a second call by design and is
// reported apart.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PaperclipAdapter } from '@exec-kernel/paperclip';
import { buildSync } from 'esbuild';
import { median } from './harness.js';

const HARNESS = fileURLToPath(
  new URL('../packages/paperclip/test/live/paperclip-server.ts', import.meta.url),
);

/** The harness is TypeScript; bundle it to a temporary module (its location is passed in). */
async function loadHarness() {
  const dir = mkdtempSync(join(tmpdir(), 'exec-kernel-bench-harness-'));
  const out = join(dir, 'harness.mjs');
  const built = buildSync({
    entryPoints: [HARNESS],
    bundle: true,
    platform: 'node',
    format: 'esm',
    write: false,
    // The harness finds its cache folder from its own location.
    define: { 'import.meta.dirname': JSON.stringify(join(HARNESS, '..')) },
  });
  writeFileSync(out, built.outputFiles[0].text);
  const harness = await import(pathToFileURL(out).href);
  rmSync(dir, { recursive: true, force: true });
  return harness;
}

/**
 * Times one call of each; which goes first alternates with `adapterFirst`, so that whatever the
 * server does differently for the first of two back-to-back calls does not favour either side.
 */
async function timedPair(viaAdapter, viaFetch, adapterFirst) {
  const time = async (call) => {
    const t = performance.now();
    await call();
    return performance.now() - t;
  };
  if (adapterFirst) {
    const ta = await time(viaAdapter);
    return [ta, await time(viaFetch)];
  }
  const tf = await time(viaFetch);
  return [await time(viaAdapter), tf];
}

/** Standard error of a median, from the spread of the middle half (normal approximation). */
function medianStandardError(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const iqr = s[Math.floor(s.length * 0.75)] - s[Math.floor(s.length * 0.25)];
  return (1.2533 * (iqr / 1.349)) / Math.sqrt(s.length);
}

/**
 * For each case, `warmup` unmeasured rounds, then `runs` timed pairs: adapter and bare fetch
 * medians, and the median (with its standard error) of the paired differences, which cancels
 * slow drift.
 */
async function compareCases(cases, { warmup, runs }) {
  const results = [];
  for (const [name, [viaAdapter, viaFetch]] of Object.entries(cases)) {
    for (let i = 0; i < warmup; i++) {
      await viaAdapter();
      await viaFetch();
    }
    const a = [];
    const f = [];
    for (let i = 0; i < runs; i++) {
      const [ta, tf] = await timedPair(viaAdapter, viaFetch, i % 2 === 0);
      a.push(ta);
      f.push(tf);
    }
    const added = a.map((ms, i) => ms - f[i]);
    results.push({
      name,
      adapterMs: median(a),
      fetchMs: median(f),
      addedMs: median(added),
      addedSeMs: medianStandardError(added),
    });
  }
  return results;
}

export async function measurePaperclipOverhead({ runs = 1000 } = {}) {
  const { startPaperclip } = await loadHarness();
  const server = await startPaperclip();
  try {
    const [agent] = server.agents;
    const board = (method, path, body) => server.board(method, path, body);
    const { body: issue } = await board('POST', `/companies/${server.companyId}/issues`, {
      title: 'Bench issue',
      status: 'todo',
      assigneeAgentId: agent.id,
    });
    const runId = await server.issueRun(agent.id, issue.id);
    const adapter = new PaperclipAdapter({
      apiUrl: server.url,
      apiKey: agent.apiKey,
      agentId: agent.id,
      companyId: server.companyId,
      runId,
    });
    await adapter.checkout(issue.id);
    const headers = {
      authorization: `Bearer ${agent.apiKey}`,
      'x-paperclip-run-id': runId,
      'content-type': 'application/json',
    };
    const bare = async (method, path, body) => {
      const response = await fetch(`${server.url}/api/${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      if (!response.ok) throw new Error(`${method} ${path}: ${response.status}`);
      return response.json();
    };

    const cases = {
      'GET issue': [() => adapter.getTask(issue.id), () => bare('GET', `issues/${issue.id}`)],
      'GET inbox-lite': [() => adapter.inbox(), () => bare('GET', 'agents/me/inbox-lite')],
      'POST checkout (idempotent re-checkout)': [
        () => adapter.checkout(issue.id),
        () =>
          bare('POST', `issues/${issue.id}/checkout`, {
            agentId: agent.id,
            expectedStatuses: ['todo', 'in_progress'],
          }),
      ],
    };
    const results = await compareCases(cases, { warmup: 20, runs });
    return { runs, results, startupMs: server.startupMs };
  } finally {
    await server.stop();
  }
}

/**
 * The same comparison against a local stand-in that answers every call at once with a fixed
 * issue: with no 20-40 ms Paperclip in the way, the adapter's own cost shows plainly.
 */
export async function measureLocalOverhead({ runs = 3000 } = {}) {
  const { createServer } = await import('node:http');
  const issue = JSON.stringify({
    id: '00000000-0000-4000-8000-000000000001',
    identifier: 'KER-1',
    companyId: 'c',
    title: 'Bench issue',
    status: 'in_progress',
    description: 'x'.repeat(400),
  });
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(issue);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  try {
    const adapter = new PaperclipAdapter({
      apiUrl: url,
      apiKey: 'pcp_bench',
      agentId: 'a',
      companyId: 'c',
      runId: 'r',
    });
    const headers = {
      authorization: 'Bearer pcp_bench',
      'x-paperclip-run-id': 'r',
      'content-type': 'application/json',
    };
    const bare = (method, path, body) =>
      fetch(`${url}/api/${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      }).then((r) => r.json());
    const cases = {
      'GET issue': [() => adapter.getTask('KER-1'), () => bare('GET', 'issues/KER-1')],
      'POST checkout': [
        () => adapter.checkout('KER-1'),
        () =>
          bare('POST', 'issues/KER-1/checkout', {
            agentId: 'a',
            expectedStatuses: ['todo', 'in_progress'],
          }),
      ],
    };
    const results = await compareCases(cases, { warmup: 300, runs });
    return { runs, results };
  } finally {
    server.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(await measureLocalOverhead()));
  console.log(
    JSON.stringify(await measurePaperclipOverhead({ runs: Number(process.argv[2] ?? 300) })),
  );
}
