import type { TaskState } from '@exec-kernel/core';

/** Paperclip's issue priorities. */
export type IssuePriority = 'critical' | 'high' | 'medium' | 'low';

/** The fields of a Paperclip issue the adapter reads; the server sends more, kept as they are. */
export interface PaperclipIssue {
  id: string;
  identifier?: string;
  companyId: string;
  title: string;
  description?: string | null;
  status: TaskState;
  priority?: IssuePriority;
  parentId?: string | null;
  assigneeAgentId?: string | null;
  assigneeUserId?: string | null;
  createdByAgentId?: string | null;
  checkoutRunId?: string | null;
  executionRunId?: string | null;
  ancestors?: Array<{ id: string; identifier?: string; title?: string; status?: string }>;
  deduplicated?: boolean;
  deduplicationReason?: string;
  [field: string]: unknown;
}

/** An entry of the agent's inbox (`GET /agents/me/inbox-lite`). */
export interface InboxItem {
  id: string;
  identifier?: string;
  title: string;
  status: TaskState;
  priority?: IssuePriority;
  parentId?: string | null;
  [field: string]: unknown;
}
