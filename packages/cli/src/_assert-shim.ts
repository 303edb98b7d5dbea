// Stands in for node:assert inside the bundled proper-lockfile -> signal-exit, which only calls
// assert.equal to check its arguments; loading node:assert costs each CLI call about 5 ms.
export function equal(actual: unknown, expected: unknown, message?: string): void {
  // biome-ignore lint/suspicious/noDoubleEquals: node:assert's equal is loose equality.
  if (actual != expected) throw new Error(message ?? `${String(actual)} == ${String(expected)}`);
}

export function ok(value: unknown, message?: string): void {
  if (!value) throw new Error(message ?? 'assertion failed');
}
