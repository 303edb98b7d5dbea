#!/usr/bin/env node
import { processIO } from './io.js';
import { main } from './main.js';

// A signal asks a blocking command (sleep, serve) to end cleanly; if nothing ends within ten
// seconds, or a second signal comes, exit. The listeners stay attached: the store's lock library
// re-raises a signal when it finds itself the only listener, which would kill the process
// mid-cleanup.
const abort = new AbortController();
const stop = () => {
  if (abort.signal.aborted) process.exit(130);
  abort.abort();
  setTimeout(() => process.exit(130), 10_000).unref();
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
void main(process.argv.slice(2), processIO(abort.signal)).then((status) => {
  process.exitCode = status;
});
