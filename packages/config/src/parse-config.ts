import { ConfigError } from '@exec-kernel/core';
import type { ErrorCode, LineCounter, YAMLError, Node as YamlNode } from 'yaml';
import type { ExecKernelConfig } from './defaults.js';
import type { NodePosition, SourcePosition } from './problems.js';
import { type ResolveConfigOptions, resolveConfig } from './resolve-config.js';

type Yaml = typeof import('yaml');

/** Options of {@link parseConfig}. */
export interface ParseConfigOptions {
  /** The file the text came from, named in errors. */
  path?: string | undefined;
  /** Environment for overrides and the coordination token. Default: `{}` (none). */
  env?: ResolveConfigOptions['env'];
}

// Our own words for yaml's error codes: its messages are not pasted into ours (the error is kept as `cause`).
const YAML_PROBLEMS: Record<ErrorCode, string> = {
  ALIAS_PROPS: 'an alias cannot have an anchor or a tag',
  BAD_ALIAS: 'an alias refers to no anchor',
  BAD_COLLECTION_TYPE: 'a collection does not match its tag',
  BAD_DIRECTIVE: 'bad directive',
  BAD_DQ_ESCAPE: 'bad escape sequence in a double-quoted string',
  BAD_INDENT: 'bad indentation (or a { or [ left open)',
  BAD_PROP_ORDER: 'anchor and tag in the wrong order',
  BAD_SCALAR_START: 'a plain value cannot start with this character (quote it)',
  BLOCK_AS_IMPLICIT_KEY: 'a block value cannot be a key',
  BLOCK_IN_FLOW: 'a block value inside a flow collection ({...} or [...])',
  DUPLICATE_KEY: 'duplicate key',
  IMPOSSIBLE: 'unreadable YAML',
  KEY_OVER_1024_CHARS: 'a key longer than 1024 characters',
  MISSING_CHAR: 'a closing character is missing',
  MULTILINE_IMPLICIT_KEY: 'a key spans more than one line',
  MULTIPLE_ANCHORS: 'more than one anchor on a value',
  MULTIPLE_DOCS: 'more than one YAML document (a config file holds one)',
  MULTIPLE_TAGS: 'more than one tag on a value',
  NON_STRING_KEY: 'a key that is not a string',
  // yaml reports its own stack running out, which only nesting thousands deep does.
  RESOURCE_EXHAUSTION: 'nested too deep',
  TAB_AS_INDENT: 'a tab used for indentation',
  TAG_RESOLVE_FAILED: 'a tag that cannot be resolved',
  UNEXPECTED_TOKEN: 'unexpected token',
};

/**
 * The deepest nesting a config file may have. A valid file nests three deep (section, key, list
 * item); the cap stops a hostile file before any recursive walk over it runs out of stack.
 */
const MAX_CONFIG_NESTING = 32;

/** The parsed data of a YAML config text and where each of its keys is written. */
export interface ParsedYaml {
  value: unknown;
  positions: Map<string, NodePosition>;
}

function yamlError(path: string | undefined, error: YAMLError, lines: LineCounter): ConfigError {
  const { line, col: column } = lines.linePos(error.pos[0]);
  const message = YAML_PROBLEMS[error.code] ?? error.code.toLowerCase().replaceAll('_', ' ');
  const where = path === undefined ? '' : ` in ${path}`;
  return new ConfigError(
    `Invalid YAML${where} (${line}:${column}): ${message}`,
    { path, line, column, problems: [{ key: '', message, line, column }] },
    { cause: error },
  );
}

/** The first collection nested deeper than {@link MAX_CONFIG_NESTING}, keys included; iterative. */
function tooDeep(yaml: Yaml, root: unknown): YamlNode | undefined {
  const stack: Array<[unknown, number]> = [[root, 1]];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const [node, depth] = next;
    if (!yaml.isCollection(node)) continue;
    if (depth > MAX_CONFIG_NESTING) return node;
    for (const item of node.items as unknown[]) {
      if (yaml.isPair(item)) stack.push([item.key, depth + 1], [item.value, depth + 1]);
      else stack.push([item, depth + 1]);
    }
  }
  return undefined;
}

/**
 * Parses YAML text into plain data and a position index. The `yaml` module is passed in so that
 * it is loaded only when there is a file to read.
 *
 * @throws ConfigError for malformed YAML (the first error, with line and column; yaml's error as
 *   `cause`) or more than one document.
 */
export function readYaml(yaml: Yaml, text: string, path?: string): ParsedYaml {
  const lines = new yaml.LineCounter();
  const doc = yaml.parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const first = [...doc.errors].sort((a, b) => a.pos[0] - b.pos[0])[0];
  if (first !== undefined) throw yamlError(path, first, lines);

  const positions = new Map<string, NodePosition>();
  const at = (node: YamlNode | null | undefined): SourcePosition | undefined => {
    const range = node?.range;
    // An absent value (`max_steps:` with nothing after it) has an empty range: no position.
    if (range === undefined || range === null || range[0] === range[1]) return undefined;
    const { line, col } = lines.linePos(range[0]);
    return { line, column: col };
  };
  const deep = tooDeep(yaml, doc.contents);
  if (deep !== undefined) {
    const place = at(deep) ?? { line: 1, column: 1 };
    const message = `nested too deep (more than ${MAX_CONFIG_NESTING} levels)`;
    const where = path === undefined ? '' : ` in ${path}`;
    throw new ConfigError(`Invalid YAML${where} (${place.line}:${place.column}): ${message}`, {
      path,
      ...place,
      problems: [{ key: '', message, ...place }],
    });
  }
  const visit = (node: unknown, keyPath: string): void => {
    if (yaml.isMap(node)) {
      for (const pair of node.items) {
        const key = yaml.isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        const childPath = keyPath === '' ? key : `${keyPath}.${key}`;
        const value = yaml.isNode(pair.value) ? pair.value : undefined;
        positions.set(childPath, {
          key: yaml.isNode(pair.key) ? at(pair.key) : undefined,
          value: at(value),
        });
        visit(value, childPath);
      }
    } else if (yaml.isSeq(node)) {
      node.items.forEach((item, index) => {
        const childPath = `${keyPath}[${index}]`;
        positions.set(childPath, { value: yaml.isNode(item) ? at(item) : undefined });
        visit(item, childPath);
      });
    }
  };
  if (doc.contents !== null) {
    positions.set('', { value: at(doc.contents) });
    visit(doc.contents, '');
  }

  let value: unknown;
  try {
    value = doc.toJS();
  } catch (error) {
    const where = path === undefined ? '' : ` in ${path}`;
    throw new ConfigError(
      `Invalid YAML${where}: its aliases cannot be expanded`,
      { path },
      { cause: error },
    );
  }
  return { value, positions };
}

/**
 * Parses the text of a `.exec-kernel.yml` and resolves it like {@link resolveConfig}: validated,
 * merged over the defaults, with `env` overrides applied. Async only because the YAML parser is
 * loaded on first use. An empty text, or one with only comments, gives the defaults.
 *
 * @throws ConfigError for malformed YAML (naming line and column of the first error), more than
 *   one document, a top level that is not a mapping, or any invalid key or value (all of them, each
 *   with line and column).
 *
 * @example
 * ```ts
 * const config = await parseConfig('budget:\n  max_steps: 20\n');
 * config.budget.maxSteps; //=> 20
 * config.budget.maxDepth; //=> 10 (the default)
 * ```
 */
export async function parseConfig(
  text: string,
  options: ParseConfigOptions = {},
): Promise<ExecKernelConfig> {
  // Loaded here, not at the top: a run without a config file never pays for the YAML parser.
  const yaml = await import('yaml');
  const { value, positions } = readYaml(yaml, text, options.path);
  return resolveConfig(value, { path: options.path, env: options.env, positions });
}
