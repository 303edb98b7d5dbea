import { MemoryStorage } from '../src/storage/memory.js';
import { storageConformance } from './conformance.js';

storageConformance('memory', async () => {
  const storage = new MemoryStorage();
  await storage.open();
  return { storage, cleanup: () => storage.close() };
});
