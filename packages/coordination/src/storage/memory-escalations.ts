import { ConflictError } from '@exec-kernel/core';
import type { EscalationRow, EscalationStatus, NewEscalationRow } from '../model.js';

const copy = <T>(value: T): T => structuredClone(value);

/** The error for an escalation id that is taken. */
export function escalationExists(id: string): ConflictError {
  return new ConflictError(
    { resource: `escalation ${id}` },
    { message: `Escalation ${id} already exists` },
  );
}

/**
 * Escalations in process memory, for {@link MemoryStorage}: numbered in insertion order, copied
 * out. Events and change signals stay with the storage.
 */
export class MemoryEscalations {
  readonly #rows = new Map<string, EscalationRow>();
  #seq = 0;

  has(id: string): boolean {
    return this.#rows.has(id);
  }

  /** Stores a new escalation with the next seq; the stored row itself (copy before handing out). */
  insert(escalation: NewEscalationRow): EscalationRow {
    const row: EscalationRow = { ...copy(escalation), seq: ++this.#seq };
    this.#rows.set(row.id, row);
    return row;
  }

  get(id: string): EscalationRow | undefined {
    const row = this.#rows.get(id);
    return row === undefined ? undefined : copy(row);
  }

  list(filter: {
    status?: EscalationStatus | undefined;
    afterSeq?: number | undefined;
    limit: number;
  }): EscalationRow[] {
    const out: EscalationRow[] = [];
    for (const row of this.#rows.values()) {
      if (
        (filter.status === undefined || row.status === filter.status) &&
        (filter.afterSeq === undefined || row.seq > filter.afterSeq)
      ) {
        out.push(copy(row));
        if (out.length >= filter.limit) break;
      }
    }
    return out;
  }

  /** Applies `changes` if the escalation is in one of `expectStatuses`; a copy of the row after. */
  update(
    id: string,
    expectStatuses: readonly EscalationStatus[],
    changes: Partial<Omit<EscalationRow, 'id' | 'seq' | 'createdAt'>>,
  ): EscalationRow | undefined {
    const row = this.#rows.get(id);
    if (row === undefined || !expectStatuses.includes(row.status)) return undefined;
    Object.assign(row, copy(changes));
    return copy(row);
  }

  countOpen(): number {
    let open = 0;
    for (const row of this.#rows.values()) if (row.status !== 'resolved') open++;
    return open;
  }
}
