/**
 * A transport whose implementation is loaded the first time something needs it. Loading Baileys
 * (with the WebAssembly it bundles) takes ~1.5 s and ~55 MB of memory; a process that never serves
 * a linked device (an API process, a simulator-only worker, the demo) never pays for it.
 *
 * Until it is loaded, nothing of it can be connected, so `disconnect` has nothing to do; every
 * other call loads it first. Event listeners are kept and handed to the implementation on load.
 */
import type { DeviceRef, LinkRequest, OutboundMessage, SendProof, SendResult, Transport, TransportEvent } from './transport.js';

type Optional = 'link' | 'cancelLink' | 'logout' | 'proveSends';

export interface Closeable {
  close?(): Promise<void> | void;
}

export interface LazyTransport extends Transport {
  /** Whether the implementation has been loaded. */
  readonly loaded: boolean;
  /** Closes the implementation if it was loaded. */
  close(): Promise<void>;
}

export function lazyTransport(kind: string, optional: readonly Optional[], load: () => Promise<Transport & Closeable>): LazyTransport {
  let impl: (Transport & Closeable) | undefined;
  let loading: Promise<Transport & Closeable> | undefined;
  const listeners = new Map<(e: TransportEvent) => void, (() => void) | null>();
  const get = (): Promise<Transport & Closeable> => {
    loading ??= load().then((t) => {
      if (t.kind !== kind) throw new Error(`the ${kind} transport loaded as ${t.kind}`);
      impl = t;
      for (const l of listeners.keys()) listeners.set(l, t.onEvent(l));
      return t;
    });
    return loading;
  };
  const t: LazyTransport = {
    kind,
    get loaded() {
      return impl !== undefined;
    },
    async connect(device: DeviceRef) {
      await (await get()).connect(device);
    },
    async disconnect(deviceId: number) {
      if (impl) await impl.disconnect(deviceId);
    },
    async send(message: OutboundMessage): Promise<SendResult> {
      return (await get()).send(message);
    },
    onEvent(listener) {
      listeners.set(listener, impl ? impl.onEvent(listener) : null);
      return () => {
        listeners.get(listener)?.();
        listeners.delete(listener);
      };
    },
    async close() {
      if (impl) await impl.close?.();
    },
  };
  // Only the optional members the implementation has: callers test for their presence.
  if (optional.includes('link')) t.link = async (device: DeviceRef, request: LinkRequest) => (await get()).link!(device, request);
  if (optional.includes('cancelLink')) t.cancelLink = async (deviceId: number) => (await get()).cancelLink!(deviceId);
  if (optional.includes('logout')) t.logout = async (deviceId: number) => (await get()).logout!(deviceId);
  if (optional.includes('proveSends')) t.proveSends = async (ids: readonly number[]): Promise<Map<number, SendProof>> => (await get()).proveSends!(ids);
  return t;
}
