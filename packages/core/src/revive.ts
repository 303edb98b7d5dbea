import {
  BudgetExceededError,
  IdleEnforcementError,
  InvalidTransitionError,
  KernelError,
  type KernelErrorCode,
  LoopDetectionError,
  TaskAdmissionError,
} from './errors.js';
import {
  ConfigError,
  ConflictError,
  ForbiddenError,
  InvalidInputError,
  NotFoundError,
  StoreError,
  TransportError,
  ValidationError,
} from './request-errors.js';

/**
 * Rebuilds the right error class from its plain-data form (`toJSON()` output, an HTTP error body).
 * Unknown codes come back as a plain `KernelError` with the same code, message and details.
 */
export function reviveKernelError(json: {
  code: string;
  message: string;
  details?: Record<string, unknown> | undefined;
}): KernelError {
  const d = (json.details ?? {}) as never;
  const options = { message: json.message };
  switch (json.code as KernelErrorCode) {
    case 'INVALID_TRANSITION':
      return new InvalidTransitionError(d, options);
    case 'LOOP_DETECTED':
      return new LoopDetectionError(d, options);
    case 'BUDGET_EXCEEDED':
      return new BudgetExceededError(d, options);
    case 'IDLE_ENFORCED':
      return new IdleEnforcementError(d, options);
    case 'TASK_ADMISSION':
      return new TaskAdmissionError({ missing: [], invalid: [], ...(d as object) }, options);
    case 'CONFIG_INVALID':
      return new ConfigError(json.message, d, options);
    case 'CONFLICT':
      return new ConflictError(d, options);
    case 'TRANSPORT':
      return new TransportError(d, options);
    case 'NOT_FOUND':
      return new NotFoundError(d, options);
    case 'STORE':
      return new StoreError(d, options);
    case 'INVALID_INPUT':
      return new InvalidInputError(d, options);
    case 'FORBIDDEN':
      return new ForbiddenError(d, options);
    case 'VALIDATION':
      return new ValidationError({ issues: [], ...(d as object) }, options);
    default:
      return new KernelError(json.code as KernelErrorCode, json.message, json.details ?? {});
  }
}
