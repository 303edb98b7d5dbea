import { readFileSync, statSync } from 'node:fs';

/** Whether SQLite refused because another connection holds the file's lock. */
export function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

/**
 * The pid holding a POSIX lock on `path`, from Linux's /proc/locks; `undefined` elsewhere or when
 * it cannot be told. Only for the message: the lock itself is SQLite's.
 */
export function lockHolder(path: string): number | undefined {
  try {
    const { dev, ino } = statSync(path, { bigint: true });
    // Linux dev_t → the major:minor pair /proc/locks prints in hex.
    const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
    const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
    for (const line of readFileSync('/proc/locks', 'utf8').split('\n')) {
      // "1: POSIX  ADVISORY  WRITE 8430 fe:00:2146477 1073741824 1073742335"; waiters show "->".
      const m = /^\d+:\s+POSIX\s+\S+\s+\S+\s+(\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/.exec(line);
      if (m === null) continue;
      const [, pid, lockMajor, lockMinor, lockIno] = m as unknown as [
        string,
        string,
        string,
        string,
        string,
      ];
      if (
        BigInt(lockIno) === ino &&
        BigInt(`0x${lockMajor}`) === major &&
        BigInt(`0x${lockMinor}`) === minor &&
        Number(pid) > 0
      ) {
        return Number(pid);
      }
    }
  } catch {
    // No /proc/locks (not Linux) or the file vanished: refuse without a pid.
  }
  return undefined;
}
