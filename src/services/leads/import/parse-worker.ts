/**
 * The worker thread a lead import reads its file in (see parse.ts). It posts each event of
 * `parseLeads` to the importing thread and, after each batch of rows or of refused rows, waits
 * for the importer's go-ahead once more than `PARSE_AHEAD` are unread: the file is read ahead of
 * the writes by a bounded amount, never into memory as a whole.
 *
 * Messages out: `{ event }` for each event, `{ failure: { code, message } }` for a file that
 * cannot be imported, `{ crash: message }` for anything else. Messages in: `'more'` (one more
 * heavy event may be posted).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ImportFailure, parseLeads, type ParseSpec } from './parse.js';

/** Batches (of rows or of refused rows) posted and not yet taken by the importer. */
export const PARSE_AHEAD = 2;

async function main(): Promise<void> {
  const port = parentPort!;
  let credit = PARSE_AHEAD;
  let wake: (() => void) | null = null;
  port.on('message', (m: unknown) => {
    if (m !== 'more') return;
    credit++;
    wake?.();
    wake = null;
  });
  try {
    for await (const event of parseLeads(workerData as ParseSpec)) {
      if (event.type === 'rows' || event.type === 'errors') {
        while (credit === 0) await new Promise<void>((r) => (wake = r));
        credit--;
      }
      port.postMessage({ event });
    }
  } catch (err) {
    if (err instanceof ImportFailure) port.postMessage({ failure: { code: err.code, message: err.message } });
    else port.postMessage({ crash: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  }
  port.close();
}

void main();
