/**
 * The live feed: one EventSource on /api/v1/live for the whole app (the server filters it to the
 * signed-in user's tenant and devices). Pages subscribe to the event types they show; EventSource
 * reconnects by itself after a drop.
 */
import { useEffect, useRef, useState } from 'react';

export type LiveHandler = (data: Record<string, unknown>, type: string) => void;

const handlers = new Map<string, Set<LiveHandler>>();
let source: EventSource | null = null;
const known = new Set<string>();
const connectionListeners = new Set<(up: boolean) => void>();
let connected = false;

function setConnected(up: boolean): void {
  connected = up;
  for (const fn of connectionListeners) fn(up);
}

function attach(type: string): void {
  if (!source || known.has(type)) return;
  known.add(type);
  source.addEventListener(type, (ev) => {
    let data: Record<string, unknown> = {};
    try {
      const parsed = JSON.parse((ev as MessageEvent<string>).data) as unknown;
      if (parsed && typeof parsed === 'object') data = parsed as Record<string, unknown>;
    } catch {
      return;
    }
    for (const h of handlers.get(type) ?? []) h(data, type);
    for (const h of handlers.get('*') ?? []) h(data, type);
  });
}

/** Opens the feed; `onSignedOut` runs when the server says the session ended (it then closes the stream). */
export function startLive(onSignedOut: () => void): void {
  if (source) return;
  source = new EventSource('/api/v1/live', { withCredentials: true });
  source.onopen = () => setConnected(true);
  source.onerror = () => setConnected(false);
  source.addEventListener('signed_out', () => {
    stopLive();
    onSignedOut();
  });
  known.clear();
  for (const type of handlers.keys()) if (type !== '*') attach(type);
}

export function stopLive(): void {
  source?.close();
  source = null;
  known.clear();
  setConnected(false);
}

/** Calls `handler` for every live event of these types while the component is mounted. */
export function useLive(types: readonly string[], handler: LiveHandler): void {
  const ref = useRef(handler);
  ref.current = handler;
  const key = types.join(',');
  useEffect(() => {
    const h: LiveHandler = (d, t) => ref.current(d, t);
    const list = key.split(',').filter(Boolean);
    for (const t of list) {
      let set = handlers.get(t);
      if (!set) handlers.set(t, (set = new Set()));
      set.add(h);
      if (t !== '*') attach(t);
    }
    return () => {
      for (const t of list) handlers.get(t)?.delete(h);
    };
  }, [key]);
}

export function useLiveConnected(): boolean {
  const [up, setUp] = useState(connected);
  useEffect(() => {
    connectionListeners.add(setUp);
    return () => {
      connectionListeners.delete(setUp);
    };
  }, []);
  return up;
}
