import { randomUUID } from 'node:crypto';
import { ListenerSet, type Unsubscribe } from '@exec-kernel/core';
import type postgres from 'postgres';
import type { ChangeSignal } from '../storage.js';
import { type Sql, withTimeout } from './connection.js';

/**
 * Shortest gap between two NOTIFYs of one instance. Each one wakes every listening instance (and
 * costs this one a round trip), so under load the writes of an interval share one; an isolated
 * write is still sent at once.
 */
const NOTIFY_INTERVAL_MS = 10;

/**
 * The change signals of one schema: this instance's writes, heard at once, and every other
 * instance's, through `LISTEN` / `NOTIFY` on the schema's channel. Each instance sends `NOTIFY`
 * just after its commits, at most one at a time (writes meanwhile fold into the next), from a
 * connection of its own. Notifications are lost while a connection is down, or when an instance
 * dies between a commit and its `NOTIFY`; the listen connection resubscribes by itself and then
 * signals `task`, so listeners catch up, but they should keep polling as a backstop.
 */
export class ChangeChannel {
  /** The `LISTEN` / `NOTIFY` channel. */
  readonly channel: string;
  readonly #signals = new ListenerSet<ChangeSignal>();
  /** Tags this instance's notifications, which it has already signalled itself. */
  readonly #instance = randomUUID().slice(0, 8);
  #notifier: postgres.Sql | undefined;
  #unlisten: (() => Promise<void>) | undefined;
  /** A signal committed here and not yet sent to the other instances. */
  #unsent: ChangeSignal | undefined;
  #sending = false;
  #sent: Promise<void> = Promise.resolve();

  constructor(channel: string) {
    this.channel = channel;
  }

  /** Subscribes on `sql`'s listen connection and sends this instance's signals on `notifier`. */
  async listen(sql: Sql, notifier: postgres.Sql): Promise<void> {
    const listening = await sql.listen(
      this.channel,
      (payload) => this.#heard(payload),
      this.#onListen(),
    );
    this.#unlisten = () => listening.unlisten();
    this.#notifier = notifier;
  }

  /** Sends what is still unsent and unsubscribes, a second at most for each. */
  async close(): Promise<void> {
    await withTimeout(this.#sent, 1_000).catch(() => {});
    this.#notifier = undefined;
    const unlisten = this.#unlisten;
    this.#unlisten = undefined;
    await withTimeout(unlisten?.(), 1_000).catch(() => {});
  }

  onChange(listener: (signal: ChangeSignal) => void): Unsubscribe {
    return this.#signals.add(listener);
  }

  /** Signals a committed write here, and (soon) to every other instance. */
  emit(signal: ChangeSignal): void {
    // A task signal implies new events too; listeners get one call per write.
    queueMicrotask(() => this.#signals.emit(signal));
    if (this.#unsent !== 'task') this.#unsent = signal;
    if (!this.#sending) this.#sent = this.#send();
  }

  /** A notification from any instance: this one's own were signalled when they committed. */
  #heard(payload: string): void {
    const [signal, instance] = payload.split(':', 2);
    if (instance === this.#instance) return;
    if (signal === 'task' || signal === 'event') this.#signals.emit(signal);
  }

  /** Called on every (re)subscription: after a reconnect, notifications may have been missed. */
  #onListen(): () => void {
    let subscribed = false;
    return () => {
      if (subscribed) this.#signals.emit('task');
      subscribed = true;
    };
  }

  /**
   * Sends pending signals: the first at once, then at most one NOTIFY per `NOTIFY_INTERVAL_MS`
   * carrying every write of that interval. A lost one is covered by the listeners' polling.
   */
  async #send(): Promise<void> {
    this.#sending = true;
    try {
      while (this.#unsent !== undefined && this.#notifier !== undefined) {
        const payload = `${this.#unsent}:${this.#instance}`;
        this.#unsent = undefined;
        await this.#notifier`select pg_notify(${this.channel}, ${payload})`.catch(() => {});
        await new Promise((resolve) => setTimeout(resolve, NOTIFY_INTERVAL_MS));
      }
    } finally {
      this.#sending = false;
    }
  }
}
