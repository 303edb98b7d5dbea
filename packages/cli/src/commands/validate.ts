import { TASK_STATES } from '@exec-kernel/core';
import { validateTransition } from '@exec-kernel/lifecycle';
import { idArg } from '../args.js';
import type { Command } from '../context.js';

export const validate: Command = {
  usage: `Usage: exec-kernel validate <from> <to> [--json]

Checks one lifecycle move against the transition table. Prints the move's reason and exits 0
when it is allowed; prints why not on stderr and exits 1 when it is not.

States: ${TASK_STATES.join(', ')}

Examples:
  exec-kernel validate todo in_progress    VALID: Work started
  exec-kernel validate todo done           INVALID: No valid transition from todo to done
`,
  options: {},
  positionals: { min: 2, max: 2, names: '<from> <to>' },
  args: { from: idArg('state'), to: idArg('state') },
  async run({ positionals }) {
    const [from, to] = positionals as [string, string];
    const reason = validateTransition(from, to);
    return { line: `VALID: ${reason}`, data: { valid: true, from, to, reason } };
  },
};
