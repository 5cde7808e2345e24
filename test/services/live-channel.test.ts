/**
 * The live channel: an event published on a store reaches its listeners with its tenant and device,
 * a payload NOTIFY could not carry is refused before it is sent, and a viewer sees only its own
 * tenant's events (a team member only its devices').
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeLiveEvent, encodeLiveEvent, listenLive, LivePayloadTooLarge, publishLive, visibleTo, type LiveEvent } from '../../src/services/live/channel.js';
import { backends, openTestDb } from '../helpers/db.js';

const qr: LiveEvent = { tenantId: 7, deviceId: 3, type: 'device.link', at: 1_780_000_000_000, data: { state: 'waiting_for_scan', qr: '2@abc' } };

describe('live channel payloads', () => {
  it('round-trips an event and drops payloads that are not events', () => {
    assert.deepEqual(decodeLiveEvent(encodeLiveEvent(qr)), qr);
    const tenantWide: LiveEvent = { tenantId: 7, type: 'campaign.progress', at: 1, data: { sent: 4 } };
    assert.deepEqual(decodeLiveEvent(encodeLiveEvent(tenantWide)), tenantWide);
    for (const bad of ['', 'nope', '{}', '[]', '{"u":"7","t":"x","a":1,"p":{}}', '{"u":7,"t":"x","a":1,"p":[]}', '{"u":7,"t":"x","a":1}']) {
      assert.equal(decodeLiveEvent(bad), null, bad);
    }
  });

  it('refuses an event too large for a notification', () => {
    assert.throws(() => encodeLiveEvent({ ...qr, data: { blob: 'x'.repeat(8_000) } }), LivePayloadTooLarge);
  });

  it('shows an event to its tenant only, and to a team member only for its devices', () => {
    assert.equal(visibleTo(qr, { tenantId: 7, deviceScope: null }), true);
    assert.equal(visibleTo(qr, { tenantId: 8, deviceScope: null }), false);
    assert.equal(visibleTo(qr, { tenantId: 7, deviceScope: [3, 4] }), true);
    assert.equal(visibleTo(qr, { tenantId: 7, deviceScope: [4] }), false);
    assert.equal(visibleTo({ ...qr, deviceId: undefined }, { tenantId: 7, deviceScope: [3] }), false);
    assert.equal(visibleTo({ ...qr, deviceId: undefined }, { tenantId: 7, deviceScope: null }), true);
  });
});

for (const backend of backends) {
  describe(`live channel on ${backend}`, () => {
    it('delivers a published event to every listener until it unlistens', async () => {
      const t = await openTestDb(backend);
      try {
        const a: LiveEvent[] = [];
        const b: LiveEvent[] = [];
        const offA = await listenLive(t.db, (e) => a.push(e));
        const offB = await listenLive(t.db, (e) => b.push(e));
        await publishLive(t.db, qr);
        await waitFor(() => a.length === 1 && b.length === 1);
        assert.deepEqual(a, [qr]);
        await offA();
        await publishLive(t.db, { ...qr, data: { state: 'linked' } });
        await waitFor(() => b.length === 2);
        assert.equal(a.length, 1);
        assert.deepEqual(b[1]!.data, { state: 'linked' });
        await offB();
      } finally {
        await t.dispose();
      }
    });
  });
}

async function waitFor(cond: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}
