import { EventEmitter } from 'node:events';
import type { NotifyHandler } from './db.js';

/**
 * In-process delivery of notifications. Both stores use it: PGlite has only this process, and on
 * PostgreSQL a listener in the same process is told at once instead of after a round trip through
 * the server (which the virtual clock could not see).
 */
export class LocalNotifier {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  emit(channel: string, payload: string): void {
    this.emitter.emit(channel, payload);
  }

  on(channel: string, handler: NotifyHandler): () => void {
    this.emitter.on(channel, handler);
    return () => this.emitter.off(channel, handler);
  }
}
