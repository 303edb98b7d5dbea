import type { Entry } from './context.js';

/**
 * Every command by name, with its summary and loader: `main` dispatches on it and the MCP server
 * builds its tools from it. Commands load on first use, so `validate` never pays for the store or
 * the config parser.
 */
export const COMMANDS: Readonly<Record<string, Entry>> = {
  validate: {
    summary: 'check a lifecycle move: validate <from> <to>',
    load: () => import('./commands/validate.js').then((m) => m.validate),
  },
  'check-loop': {
    summary: 'check a new task against the loop rules (nothing is registered)',
    load: () => import('./commands/check-loop.js').then((m) => m.checkLoop),
  },
  'check-budget': {
    summary: 'check steps and elapsed time against a budget',
    load: () => import('./commands/check-budget.js').then((m) => m.checkBudget),
  },
  sleep: {
    summary: 'go idle: no task creation until woken or timed out (blocks)',
    load: () => import('./commands/sleep.js').then((m) => m.sleep),
  },
  wake: {
    summary: "end an agent's sleep",
    load: () => import('./commands/sleep.js').then((m) => m.wake),
  },
  step: {
    summary: "record steps on a task's budget",
    load: () => import('./commands/step.js').then((m) => m.step),
  },
  action: {
    summary: "check a task's tool call against the action-loop rules and record it",
    load: () => import('./commands/action.js').then((m) => m.action),
  },
  'action-result': {
    summary: "record the result of a task's newest tool call (the no-progress rule)",
    load: () => import('./commands/action.js').then((m) => m.actionResult),
  },
  'task create': {
    summary: 'create a task (idle, admission and loop checked)',
    load: () => import('./commands/task.js').then((m) => m.taskCreate),
  },
  'task transition': {
    summary: 'move a task to another state',
    load: () => import('./commands/task.js').then((m) => m.taskTransition),
  },
  'task show': {
    summary: 'show a task: state, budget, depth, history, notes, context',
    load: () => import('./commands/task.js').then((m) => m.taskShow),
  },
  'task list': {
    summary: 'list tasks, optionally by state or agent',
    load: () => import('./commands/task.js').then((m) => m.taskList),
  },
  'task checkout': {
    summary: 'claim a task for this agent (Paperclip or a coordination service)',
    load: () => import('./commands/task-lease.js').then((m) => m.taskCheckout),
  },
  'task claim': {
    summary: 'claim the next task from a coordination service',
    load: () => import('./commands/task-lease.js').then((m) => m.taskClaim),
  },
  'task release': {
    summary: 'give a checked-out task back (Paperclip or a coordination service)',
    load: () => import('./commands/task-lease.js').then((m) => m.taskRelease),
  },
  'context get': {
    summary: "print a task's context (one key or all)",
    load: () => import('./commands/context.js').then((m) => m.contextGet),
  },
  'context set': {
    summary: 'set a context value on a task',
    load: () => import('./commands/context.js').then((m) => m.contextSet),
  },
  'context note': {
    summary: 'add a note to a task',
    load: () => import('./commands/context.js').then((m) => m.contextNote),
  },
  'escalation list': {
    summary: "list the coordination service's escalations (operator)",
    load: () => import('./commands/operator.js').then((m) => m.escalationList),
  },
  'escalation ack': {
    summary: 'acknowledge an escalation (operator)',
    load: () => import('./commands/operator.js').then((m) => m.escalationAck),
  },
  'escalation resolve': {
    summary: 'resolve an escalation, maybe requeueing its task (operator)',
    load: () => import('./commands/operator.js').then((m) => m.escalationResolve),
  },
  events: {
    summary: "print the service's event log; --follow: as it happens (operator)",
    load: () => import('./commands/operator.js').then((m) => m.events),
  },
  'agent add': {
    summary: 'register an agent on the service, print its token (operator)',
    load: () => import('./commands/operator.js').then((m) => m.agentAdd),
  },
  'agent list': {
    summary: 'list the agents on the service and the tasks each holds (operator)',
    load: () => import('./commands/operator.js').then((m) => m.agentList),
  },
  serve: {
    summary: 'run the coordination service (a shared task queue for many agents)',
    load: () => import('./commands/serve.js').then((m) => m.serve),
  },
  'config show': {
    summary: 'print the effective configuration',
    load: () => import('./commands/config.js').then((m) => m.configShow),
  },
  'config validate': {
    summary: 'check the configuration file',
    load: () => import('./commands/config.js').then((m) => m.configValidate),
  },
  mcp: {
    summary: 'serve these commands as MCP tools over stdio (for agent harnesses)',
    // The server gets this table from here, so it imports nothing that leads back to it.
    load: () => import('./commands/mcp.js').then((m) => m.mcpServer(COMMANDS)),
  },
};

/** The command groups: `task create` is typed as two words. */
export const GROUPS: ReadonlySet<string> = new Set([
  'task',
  'context',
  'config',
  'escalation',
  'agent',
]);
