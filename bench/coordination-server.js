// The coordination service as users run it, in a process of its own, for bench/coordination.js:
// `startCoordinationServer` from the built package on a free port. The database, its durability
// and the admin token come from the environment (BENCH_COORD_DB, BENCH_COORD_DURABILITY,
// BENCH_COORD_ADMIN_TOKEN). Prints one JSON line
// with the URL, then serves until its stdin ends, closes the service and exits (so a
// `--cpu-prof` profile gets written).
import { startCoordinationServer } from '@exec-kernel/coordination';

const server = await startCoordinationServer({
  db: process.env.BENCH_COORD_DB,
  durability: process.env.BENCH_COORD_DURABILITY || undefined,
  adminToken: process.env.BENCH_COORD_ADMIN_TOKEN,
  port: 0,
});
process.stdout.write(`${JSON.stringify({ url: server.url, pid: process.pid })}\n`);
process.stdin.resume();
process.stdin.on('end', async () => {
  await server.close();
  process.exit(0);
});
