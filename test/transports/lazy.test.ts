/**
 * A transport loaded on first use: nothing is loaded until a device needs it, it is loaded once
 * however many calls race for it, and listeners registered before it loaded hear its events.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lazyTransport } from '../../src/transports/lazy.js';
import type { OutboundMessage, Transport, TransportEvent } from '../../src/transports/transport.js';

function fake() {
  const listeners = new Set<(e: TransportEvent) => void>();
  const calls: string[] = [];
  const t: Transport & { close(): Promise<void> } = {
    kind: 'fake',
    async connect(d) {
      calls.push(`connect ${d.id}`);
    },
    async disconnect(id) {
      calls.push(`disconnect ${id}`);
    },
    async send(m) {
      calls.push(`send ${m.id}`);
      return { ok: true, transportId: `x-${m.id}` };
    },
    onEvent(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    async link(d) {
      calls.push(`link ${d.id}`);
    },
    async close() {
      calls.push('close');
    },
  };
  return { t, calls, emit: (e: TransportEvent) => listeners.forEach((l) => l(e)), listeners };
}

const msg: OutboundMessage = { id: 9, deviceId: 1, to: '+1', body: 'hi', media: null, origin: 'campaign:1', attempt: 1 };

describe('lazy transport', () => {
  it('loads on the first call that needs it, once, and forwards to it', async () => {
    const f = fake();
    let loads = 0;
    const t = lazyTransport('fake', ['link'], async () => {
      loads++;
      await new Promise((r) => setTimeout(r, 10));
      return f.t;
    });
    const heard: TransportEvent[] = [];
    const off = t.onEvent((e) => heard.push(e));
    await t.disconnect(1);
    await t.close();
    assert.equal(loads, 0, 'nothing connected: nothing to load for');
    assert.equal(t.loaded, false);
    await Promise.all([t.connect({ id: 1, userId: 1, phone: null }), t.connect({ id: 2, userId: 1, phone: null })]);
    assert.equal(loads, 1);
    assert.equal(t.loaded, true);
    assert.deepEqual((await t.send(msg)) as unknown, { ok: true, transportId: 'x-9' });
    await t.link!({ id: 3, userId: 1, phone: null }, { method: 'qr' } as never);
    await t.disconnect(2);
    f.emit({ type: 'status', deviceId: 1, status: 'online', at: 5 });
    assert.deepEqual(heard, [{ type: 'status', deviceId: 1, status: 'online', at: 5 }]);
    off();
    f.emit({ type: 'status', deviceId: 1, status: 'offline', at: 6 });
    assert.equal(heard.length, 1, 'unsubscribed');
    await t.close();
    assert.deepEqual(f.calls.sort(), ['close', 'connect 1', 'connect 2', 'disconnect 2', 'link 3', 'send 9']);
  });

  it('has only the optional members it is told the implementation has', () => {
    const t = lazyTransport('fake', ['link', 'logout'], async () => fake().t);
    assert.equal(typeof t.link, 'function');
    assert.equal(typeof t.logout, 'function');
    assert.equal(t.cancelLink, undefined);
    assert.equal(t.proveSends, undefined);
  });

  it('refuses an implementation of another kind', async () => {
    const t = lazyTransport('baileys', [], async () => fake().t);
    await assert.rejects(t.connect({ id: 1, userId: 1, phone: null }), /loaded as fake/);
  });
});
