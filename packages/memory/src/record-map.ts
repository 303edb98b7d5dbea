/** A record kept as the JSON text it was read from, until someone needs the object. */
class Raw {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

/**
 * A `Map`-like collection of JSON records that parses each record only when it is first read, and
 * writes untouched records back as the exact text they were read from. A command that touches one
 * task of a thousand parses and re-serialises one, not a thousand.
 */
export class RecordMap<T> {
  readonly #entries = new Map<string, T | Raw>();
  readonly #parse: (text: string) => T;

  constructor(parse: (text: string) => T, records: Iterable<[string, T]> = []) {
    this.#parse = parse;
    for (const [id, record] of records) this.#entries.set(id, record);
  }

  get size(): number {
    return this.#entries.size;
  }

  has(id: string): boolean {
    return this.#entries.has(id);
  }

  /** The record, parsed on first read. Any record read is written back from the object. */
  get(id: string): T | undefined {
    const entry = this.#entries.get(id);
    if (!(entry instanceof Raw)) return entry;
    const record = this.#parse(entry.text);
    this.#entries.set(id, record);
    return record;
  }

  set(id: string, record: T): this {
    this.#entries.set(id, record);
    return this;
  }

  /** Adds a record as unparsed JSON text. */
  setText(id: string, text: string): this {
    this.#entries.set(id, new Raw(text));
    return this;
  }

  keys(): IterableIterator<string> {
    return this.#entries.keys();
  }

  /** Every record, parsing those not read yet; in insertion order. */
  *values(): IterableIterator<T> {
    for (const id of this.#entries.keys()) yield this.get(id) as T;
  }

  /** Each record as one line of JSON: the original text if it was never read. */
  *lines(): IterableIterator<string> {
    for (const entry of this.#entries.values())
      yield entry instanceof Raw ? entry.text : JSON.stringify(entry);
  }
}
