import type { Violation } from '@exec-kernel/core';
import type { CoordinationClient } from './client.js';

/** What `@exec-kernel/paperclip`'s `EscalationHook` hands a sink (structural: no dependency). */
export interface ForwardedEscalation {
  kind: 'blocked' | 'violation';
  taskId: string | undefined;
  agentId: string | undefined;
  comment: string | undefined;
  violation: Violation | undefined;
  at: string;
}

/**
 * A sink for `@exec-kernel/paperclip`'s `EscalationHook`: each task entering `blocked` and each
 * violation on Paperclip becomes an item of the coordination service's escalation queue (and an
 * event), raised as the client's agent. A violation's Paperclip agent id is an id of another
 * system, which the service would take for another of its agents: it travels as
 * `violation.details.paperclipAgentId` instead of `violation.agentId`.
 *
 * @example
 * ```ts
 * new EscalationHook(coordinationSink(client)).attach(adapter);
 * ```
 */
export function coordinationSink(client: CoordinationClient): {
  send(escalation: ForwardedEscalation): Promise<void>;
} {
  return {
    async send(escalation) {
      await client.escalate({
        kind: escalation.kind,
        ...(escalation.taskId === undefined ? {} : { taskId: escalation.taskId }),
        ...(escalation.comment === undefined ? {} : { comment: escalation.comment }),
        ...(escalation.violation === undefined
          ? {}
          : { violation: asForwarded(escalation.violation) }),
      });
    },
  };
}

/** A Paperclip violation with its agent id moved into `details` (see {@link coordinationSink}). */
function asForwarded(violation: Violation): Violation {
  const { agentId, ...rest } = violation;
  if (agentId === undefined) return violation;
  return { ...rest, details: { ...violation.details, paperclipAgentId: agentId } };
}
