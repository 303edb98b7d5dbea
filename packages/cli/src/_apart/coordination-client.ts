// Built into dist/coordination-client.cjs: the coordination client (with ky), required by the
// binary only when a task command works against a coordination service.
export * from '@exec-kernel/coordination-client';
