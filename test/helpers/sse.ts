/**
 * A Server-Sent Events client over a real socket (inject cannot read a stream that never ends):
 * the server listens on a free port of 127.0.0.1 and each stream is read frame by frame.
 */
import type { Api } from '../../src/api/types.js';

export interface SseFrame {
  /** The event name, or `comment` for a `: ...` line. */
  event: string;
  data: any;
}

export interface SseStream {
  status: number;
  headers: Headers;
  frames: SseFrame[];
  /** Resolves with the first frame (already received or to come) that matches; rejects after `ms`. */
  next(match: (f: SseFrame) => boolean, ms?: number): Promise<SseFrame>;
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  close(): void;
}

export async function listenOnce(app: Api): Promise<string> {
  const address = app.server.address();
  if (address && typeof address === 'object') return `http://127.0.0.1:${address.port}`;
  return app.listen({ port: 0, host: '127.0.0.1' });
}

function parse(block: string): SseFrame | null {
  let event = 'message';
  const data: string[] = [];
  let comment = false;
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) comment = true;
    else if (line.startsWith('event: ')) event = line.slice(7);
    else if (line.startsWith('data: ')) data.push(line.slice(6));
  }
  if (data.length > 0) return { event, data: JSON.parse(data.join('\n')) };
  return comment ? { event: 'comment', data: block } : null;
}

export async function openSse(base: string, path: string, headers: Record<string, string>): Promise<SseStream> {
  const ac = new AbortController();
  const res = await fetch(base + path, { headers: { accept: 'text/event-stream', ...headers }, signal: ac.signal });
  const frames: SseFrame[] = [];
  const waiters: { match: (f: SseFrame) => boolean; resolve: (f: SseFrame) => void }[] = [];
  let endedResolve!: () => void;
  const ended = new Promise<void>((r) => (endedResolve = r));
  if (!res.body) {
    endedResolve();
  } else {
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    void (async () => {
      let buf = '';
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let at: number;
          while ((at = buf.indexOf('\n\n')) >= 0) {
            const f = parse(buf.slice(0, at));
            buf = buf.slice(at + 2);
            if (!f) continue;
            frames.push(f);
            for (const w of waiters.splice(0)) {
              if (w.match(f)) w.resolve(f);
              else waiters.push(w);
            }
          }
        }
      } catch {
        // Aborted by close().
      }
      endedResolve();
    })();
  }
  return {
    status: res.status,
    headers: res.headers,
    frames,
    ended,
    next(match, ms = 5000) {
      const seen = frames.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching event within ${ms} ms; got ${JSON.stringify(frames.map((f) => f.event))}`)), ms);
        waiters.push({
          match,
          resolve: (f) => {
            clearTimeout(timer);
            resolve(f);
          },
        });
      });
    },
    close: () => ac.abort(),
  };
}
