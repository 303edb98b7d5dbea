import { UNPRINTABLE } from '@exec-kernel/core';

/** What a secret is replaced with. */
export const REDACTED = '[redacted]';

// Credentials in the shapes a server or a proxy echoes them: an Authorization value, a Paperclip
// agent key, a JWT (Paperclip's run tokens), the user:password part of a URL.
// A scheme's credential is token68 (RFC 9110); at least 8 characters, so prose such as "Bearer
// token required" keeps its words.
const AUTH_VALUE = /\b(Bearer|Basic)(\s+)[A-Za-z0-9._~+/-]{8,}=*/gi;
const AGENT_KEY = /pcp_[A-Za-z0-9_-]+/g;
const JWT = /\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g;
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@]*@/gi;
// Anything that would break a one-line message or drive a terminal (core's UNPRINTABLE), in runs.
const UNPRINTABLE_RUNS = new RegExp(`${UNPRINTABLE.source}+`, 'gu');

/** Longest text taken from a server's answer into a message. */
export const MAX_SERVER_TEXT = 300;

/**
 * Removes secrets from text that leaves the adapter (messages, `details`): the adapter's own
 * secrets wherever they appear (also URL- or JSON-escaped), and anything shaped like a credential.
 */
export class Redactor {
  readonly #secrets: string[];

  constructor(secrets: ReadonlyArray<string | undefined>) {
    const forms = new Set<string>();
    for (const secret of secrets) {
      if (secret === undefined || secret === '') continue;
      forms.add(secret);
      forms.add(encodeURIComponent(secret));
      forms.add(JSON.stringify(secret).slice(1, -1));
    }
    // Longest first, so a secret that contains another is replaced whole.
    this.#secrets = [...forms].sort((a, b) => b.length - a.length);
  }

  /** `value` with every secret replaced by `[redacted]`. */
  text(value: string): string {
    let out = value;
    for (const secret of this.#secrets) out = out.split(secret).join(REDACTED);
    return out
      .replace(AUTH_VALUE, `$1$2${REDACTED}`)
      .replace(AGENT_KEY, `pcp_${REDACTED}`)
      .replace(JWT, REDACTED)
      .replace(URL_CREDENTIALS, `$1${REDACTED}@`);
  }

  /** Whether `value` holds something {@link text} would remove. */
  holdsSecret(value: string): boolean {
    return this.text(value) !== value;
  }

  /**
   * Text a server sent, made fit for a one-line message: redacted, unprintable characters turned
   * into spaces, whitespace collapsed, cut to {@link MAX_SERVER_TEXT} characters. `undefined` for
   * anything that is not a non-blank string.
   */
  serverText(value: unknown): string | undefined {
    if (typeof value !== 'string') return undefined;
    const clean = this.text(value).replace(UNPRINTABLE_RUNS, ' ').replace(/\s+/g, ' ').trim();
    if (clean === '') return undefined;
    // Cut on a code point, not inside a surrogate pair.
    const points = [...clean.slice(0, MAX_SERVER_TEXT * 2 + 2)];
    return points.length > MAX_SERVER_TEXT
      ? `${points.slice(0, MAX_SERVER_TEXT).join('')}…`
      : clean;
  }
}
