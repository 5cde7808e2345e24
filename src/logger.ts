import { pino, type Logger } from 'pino';

export function createLogger(level: string, name = 'fleetcast'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination(2));
}

export type { Logger };
