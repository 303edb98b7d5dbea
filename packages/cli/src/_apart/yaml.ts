// Built into dist/yaml.cjs: yaml as one minified file, required by the binary only when a config
// file exists (as 60 separate files it costs such a call about 40 ms to load).
export * from 'yaml';
