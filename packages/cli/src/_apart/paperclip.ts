// Built into dist/paperclip.cjs: the Paperclip adapter (with ky), required by the binary only when
// a task command works on Paperclip, so other calls do not parse it.
export * from '@exec-kernel/paperclip';
