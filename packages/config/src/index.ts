// Re-exported so `catch (e) { if (ConfigError.is(e)) … }` needs nothing but this package.
export type { ConfigProblem } from '@exec-kernel/core';
export { ConfigError } from '@exec-kernel/core';
export type {
  ActionsConfig,
  AdmissionConfig,
  BudgetConfig,
  ConfigSection,
  CoordinationConfig,
  ExecKernelConfig,
  IdleConfig,
  LifecycleConfig,
  PaperclipConfig,
  ReadonlyExecKernelConfig,
  StoreConfig,
} from './defaults.js';
export { DEFAULT_CONFIG } from './defaults.js';
export { envVariableName } from './env.js';
export type { FindConfigFileOptions } from './find-config-file.js';
export { CONFIG_FILE_NAMES, findConfigFile } from './find-config-file.js';
export type { LoadConfigOptions, LoadedConfig } from './load-config.js';
export { loadConfig } from './load-config.js';
export type { ParseConfigOptions } from './parse-config.js';
export { parseConfig } from './parse-config.js';
export type { ConfigPositions, NodePosition, SourcePosition } from './problems.js';
export type {
  ExecKernelFileConfig,
  FileThreshold,
  ResolveConfigOptions,
} from './resolve-config.js';
export { resolveConfig, toFileConfig } from './resolve-config.js';
