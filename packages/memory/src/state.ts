import type { BudgetLimits } from '@exec-kernel/budget';
import {
  type BudgetType,
  checkId,
  isTaskState,
  StoreError,
  type TaskState,
} from '@exec-kernel/core';
import type { SleepRecord, TransitionRecord, WakeRecord } from '@exec-kernel/lifecycle';
import type { ActionHistoryJSON } from '@exec-kernel/loop';
import { RecordMap } from './record-map.js';

/** The state-file format this package writes; it reads this one and refuses newer ones. */
export const FORMAT_VERSION = 1;

/** A JSON value, as task context holds them. */
export type JsonValue =
  | string
  | number
  | boolean
  | null
  | JsonValue[]
  | { [key: string]: JsonValue };

/** A free-text note on a task. */
export interface TaskNote {
  at: string;
  text: string;
  author?: string;
}

/** A task's budget counters as stored. Counters include what its budget descendants spent. */
export interface StoredBudget {
  limits: BudgetLimits;
  parentTaskId?: string;
  stepsTaken: number;
  tokens: number;
  costUsd: number;
  startedAt: string;
  endedAt?: string;
  /** Budget types whose warning already fired, so it does not fire again in the next session. */
  warned?: BudgetType[];
}

/** The last action-loop refusal of a task, as remembered. */
export interface ActionRefusal {
  at: string;
  loopType: string;
  tool: string;
  count: number;
  message: string;
}

/** A task's tool calls as the action-loop rules see them, kept between sessions. */
export interface StoredActions {
  /** The task's `ActionHistory`, in its `toJSON()` form. */
  history: ActionHistoryJSON;
  /** How many calls (or results) the rules refused. */
  refused: number;
  lastRefusal?: ActionRefusal;
}

/** Everything remembered about one task. */
export interface TaskRecord {
  taskId: string;
  createdAt: string;
  updatedAt: string;
  /** The agent that owns the task (set when its loop node is registered). */
  agentId?: string;
  taskType?: string;
  title?: string;
  parentTaskId?: string;
  createdByTaskId?: string;
  /** Depth in the parent tree, as the loop detector recorded it. */
  depth?: number;
  state: TaskState;
  history: TransitionRecord[];
  budget?: StoredBudget;
  admission?: Record<string, string>;
  notes: TaskNote[];
  context: Record<string, JsonValue>;
  /** The action-loop history (absent until the task's first observed tool call). */
  actions?: StoredActions;
}

/** Everything remembered about one agent. */
export interface AgentRecord {
  agentId: string;
  sleep?: SleepRecord;
  lastWake?: WakeRecord;
}

/** The state file's JSON form. Tasks and agents are arrays, in creation order. */
export interface MemoryStateJSON {
  version: number;
  tasks: TaskRecord[];
  agents: AgentRecord[];
}

const corrupt = (location: string): StoreError =>
  new StoreError({ path: location, problem: 'corrupt' });

function checkTask(value: unknown, location: string): TaskRecord {
  const task = value as TaskRecord | null;
  if (
    typeof task?.taskId !== 'string' ||
    !isTaskState(task.state) ||
    !Array.isArray(task.history) ||
    // Updates append to notes and define keys on context: a hand edit must not break them.
    !Array.isArray(task.notes) ||
    typeof task.context !== 'object' ||
    task.context === null ||
    Array.isArray(task.context) ||
    // Older files have no `actions`; the history inside is checked when it is rebuilt.
    (task.actions !== undefined &&
      (typeof task.actions !== 'object' ||
        task.actions === null ||
        typeof task.actions.refused !== 'number'))
  ) {
    throw corrupt(location);
  }
  return task;
}

function checkAgent(value: unknown, location: string): AgentRecord {
  const agent = value as AgentRecord | null;
  if (typeof agent?.agentId !== 'string') throw corrupt(location);
  return agent;
}

function parseLine<T>(
  text: string,
  check: (value: unknown, location: string) => T,
  location: string,
): T {
  try {
    return check(JSON.parse(text), location);
  } catch (error) {
    if (StoreError.is(error)) throw error;
    throw new StoreError({ path: location, problem: 'corrupt' }, { cause: error });
  }
}

function checkVersion(version: unknown, location: string): void {
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1)
    throw corrupt(location);
  if (version > FORMAT_VERSION)
    throw new StoreError({ path: location, problem: 'newer_version', version });
}

// The file is plain JSON laid out one record per line, so it can be read lazily:
//   {"version":1,"tasks":[
//   {"taskId":"t1",...},
//   {"taskId":"t2",...}
//   ],"agents":[
//   {"agentId":"a1",...}
//   ]}
const HEADER = /^\{"version":(\d+),"tasks":\[$/;
const TASKS_END = '],"agents":[';
const AGENTS_END = ']}';
const TASK_ID = /^\{"taskId":("(?:[^"\\]|\\.)*")/;
const AGENT_ID = /^\{"agentId":("(?:[^"\\]|\\.)*")/;

/**
 * All remembered tasks and agents. Records read from a file are parsed on first use and written
 * back untouched when never used. Stores hand one to an update and write it back only when
 * something marked it changed.
 */
export class MemoryState {
  readonly tasks: RecordMap<TaskRecord>;
  readonly agents: RecordMap<AgentRecord>;
  readonly #location: string;
  #changed = false;

  constructor(
    tasks: Iterable<TaskRecord> = [],
    agents: Iterable<AgentRecord> = [],
    location = 'memory',
  ) {
    this.#location = location;
    this.tasks = new RecordMap(
      (text) => parseLine(text, checkTask, location),
      [...tasks].map((t) => [t.taskId, t] as [string, TaskRecord]),
    );
    this.agents = new RecordMap(
      (text) => parseLine(text, checkAgent, location),
      [...agents].map((a) => [a.agentId, a] as [string, AgentRecord]),
    );
  }

  /** Names the state's file (or `memory`) in errors. */
  get location(): string {
    return this.#location;
  }

  /** Whether anything changed since the state was read. */
  get changed(): boolean {
    return this.#changed;
  }

  /** Marks the state changed, so the store writes it back. */
  touch(): void {
    this.#changed = true;
  }

  /**
   * The task's record, created in `initial` state (default `todo`) when it is not known yet.
   *
   * @throws InvalidInputError when a task not known yet has an id that breaks core's id rule.
   */
  ensureTask(taskId: string, now: string, initial: TaskState = 'todo'): TaskRecord {
    let task = this.tasks.get(taskId);
    if (task === undefined) {
      checkId(taskId, 'task id');
      task = {
        taskId,
        createdAt: now,
        updatedAt: now,
        state: initial,
        history: [],
        notes: [],
        context: {},
      };
      this.tasks.set(taskId, task);
    }
    this.touch();
    return task;
  }

  /**
   * The agent's record, created when it is not known yet.
   *
   * @throws InvalidInputError when an agent not known yet has an id that breaks core's id rule.
   */
  ensureAgent(agentId: string): AgentRecord {
    let agent = this.agents.get(agentId);
    if (agent === undefined) {
      checkId(agentId, 'agent id');
      agent = { agentId };
      this.agents.set(agentId, agent);
    }
    this.touch();
    return agent;
  }

  /** The JSON form, every record parsed. */
  toJSON(): MemoryStateJSON {
    return {
      version: FORMAT_VERSION,
      tasks: [...this.tasks.values()],
      agents: [...this.agents.values()],
    };
  }

  /** The file form: JSON with one record per line; untouched records keep their original text. */
  toText(): string {
    const tasks = [...this.tasks.lines()].join(',\n');
    const agents = [...this.agents.lines()].join(',\n');
    return `{"version":${FORMAT_VERSION},"tasks":[\n${tasks}${tasks && '\n'}${TASKS_END}\n${agents}${agents && '\n'}${AGENTS_END}\n`;
  }

  /** A deep copy, unchanged. */
  clone(): MemoryState {
    return MemoryState.fromText(this.toText(), this.#location);
  }

  /**
   * Reads the JSON form, checking its format version and every record's shape.
   *
   * @param location - named in errors (a file path, or `memory`).
   * @throws StoreError `newer_version` for a file from a newer format, `corrupt` for anything else wrong.
   */
  static fromJSON(json: unknown, location: string): MemoryState {
    if (typeof json !== 'object' || json === null) throw corrupt(location);
    const { version, tasks, agents } = json as Partial<MemoryStateJSON>;
    checkVersion(version, location);
    if (!Array.isArray(tasks) || !Array.isArray(agents)) throw corrupt(location);
    return new MemoryState(
      tasks.map((t) => checkTask(t, location)),
      agents.map((a) => checkAgent(a, location)),
      location,
    );
  }

  /**
   * Reads the file form. A file in the one-record-per-line layout this package writes is read
   * lazily; any other valid JSON (a file edited by hand) is parsed whole and checked.
   *
   * @throws StoreError as {@link fromJSON} does.
   */
  static fromText(text: string, location: string): MemoryState {
    const lines = text.split('\n');
    const header = HEADER.exec(lines[0] ?? '');
    if (header !== null) {
      checkVersion(Number(header[1]), location);
      const state = new MemoryState([], [], location);
      let i = 1;
      let ok = true;
      for (; i < lines.length && lines[i] !== TASKS_END; i++) {
        ok &&= addLine(state.tasks, lines[i] as string, '{"taskId":"', TASK_ID);
      }
      for (i++; i < lines.length && lines[i] !== AGENTS_END; i++) {
        ok &&= addLine(state.agents, lines[i] as string, '{"agentId":"', AGENT_ID);
      }
      const rest = lines
        .slice(i + 1)
        .join('')
        .trim();
      if (ok && lines[i] === AGENTS_END && rest === '') return state;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new StoreError({ path: location, problem: 'corrupt' }, { cause: error });
    }
    return MemoryState.fromJSON(json, location);
  }
}

/** Adds one record line by the id at its start; false when the line is not in the expected form. */
function addLine<T>(
  records: RecordMap<T>,
  line: string,
  prefix: string,
  idPattern: RegExp,
): boolean {
  const text = line.endsWith(',') ? line.slice(0, -1) : line;
  if (!text.endsWith('}') || !text.startsWith(prefix)) return false;
  const end = text.indexOf('"', prefix.length);
  let id = end < 0 ? '' : text.slice(prefix.length, end);
  if (end < 0 || id.includes('\\')) {
    // An id with escapes: let JSON decode it.
    const match = idPattern.exec(text);
    if (match === null) return false;
    id = JSON.parse(match[1] as string) as string;
  }
  if (records.has(id)) return false;
  records.setText(id, text);
  return true;
}
