/**
 * The Baileys transport against a fake socket on the virtual clock, on every backend: linking (QR,
 * pairing code, expiry), the reconnect policy for each DisconnectReason, the staggered restore, and
 * the auth state's round trip through the database (encrypted, restored by a new process).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { BufferJSON } from 'baileys';
import { VirtualClock } from '../../src/engine/clock.js';
import { seededRandom } from '../../src/engine/pacing.js';
import { SecretBox, SecretBoxError } from '../../src/services/secrets/secret-box.js';
import { countAuthRows } from '../../src/store/sql/auth-state.js';
import { insertDevices } from '../../src/store/sql/devices.js';
import { insertUser } from '../../src/store/sql/users.js';
import { DbAuthStore } from '../../src/transports/baileys/auth-state.js';
import { BaileysTransport, CLOSE, outboxIdOf, phoneOfJid, waMessageId } from '../../src/transports/baileys/transport.js';
import type { DeviceRef, TransportEvent } from '../../src/transports/transport.js';
import { backends, openTestDb, type TestDb } from '../helpers/db.js';
import { fakeFactory } from '../helpers/fake-wa.js';
import { quietLog } from '../helpers/world.js';

const T0 = Date.parse('2026-03-02T09:00:00Z');

interface Rig {
  t: TestDb;
  clock: VirtualClock;
  box: SecretBox;
  fake: ReturnType<typeof fakeFactory>;
  wa: BaileysTransport;
  events: TransportEvent[];
  refs: DeviceRef[];
  run(ms: number): Promise<void>;
  /** Another transport (a restarted process) over the same database and key. */
  restart(): BaileysTransport;
}

async function rig(backend: (typeof backends)[number], devices = 1, o: { connectsPerSecond?: number } = {}): Promise<Rig> {
  const clock = new VirtualClock(T0);
  const t = await openTestDb(backend, (p) => clock.track(p));
  const userId = await insertUser(t.db, { email: `wa-${Math.random()}@example.test`, timeZone: 'UTC' }, new Date(T0));
  const ids = await insertDevices(t.db, userId, Array.from({ length: devices }, (_, i) => ({ name: `wa ${i}`, transport: 'baileys', minDelayMs: 0, maxDelayMs: 0, linked: false })), new Date(T0));
  const box = new SecretBox(randomBytes(32));
  const fake = fakeFactory(() => clock.now());
  const events: TransportEvent[] = [];
  const make = () => {
    const wa = new BaileysTransport({
      db: t.db,
      clock,
      box,
      socketFactory: fake.factory,
      log: quietLog,
      random: seededRandom(3),
      backoff: { baseMs: 2_000, maxMs: 60_000 },
      connectsPerSecond: o.connectsPerSecond ?? 100,
    });
    wa.onEvent((e) => events.push(e));
    return wa;
  };
  return {
    t,
    clock,
    box,
    fake,
    wa: make(),
    events,
    refs: ids.map((id) => ({ id, userId, phone: null })),
    run: async (ms) => {
      await clock.advanceTo(clock.now() + ms);
      await clock.settle();
    },
    restart: make,
  };
}

const of = (events: TransportEvent[], type: TransportEvent['type']) => events.filter((e) => e.type === type);
const statuses = (events: TransportEvent[]) => of(events, 'status').map((e) => (e as { status: string }).status);
const links = (events: TransportEvent[]) => of(events, 'link').map((e) => (e as Extract<TransportEvent, { type: 'link' }>).progress);

/** Links device `ref` by QR through the fake socket and brings it online; returns the second socket. */
async function linkByQr(r: Rig, ref: DeviceRef, jid = '60123456789:7@s.whatsapp.net') {
  await r.wa.link(ref, { method: 'qr' });
  await r.run(0);
  const s1 = r.fake.last(ref.id);
  s1.qr('2@first-ref,noise,identity,adv');
  await r.run(0);
  s1.pair(jid);
  await r.run(0);
  s1.close(CLOSE.restartRequired, 'restart required');
  await r.run(0);
  const s2 = r.fake.last(ref.id);
  assert.notEqual(s2, s1, 'a new socket after the restart');
  s2.open();
  await r.run(0);
  return s2;
}

describe('Baileys message ids and numbers', () => {
  it('carry the outbox id and read back phone numbers from jids', () => {
    assert.equal(waMessageId(42), 'FC1D0000000000000042');
    assert.equal(outboxIdOf(waMessageId(9_007_199_254)), 9_007_199_254);
    assert.equal(outboxIdOf('3EB0ABCDEF'), null);
    assert.equal(phoneOfJid('60123456789:12@s.whatsapp.net'), '+60123456789');
    assert.equal(phoneOfJid('60123456789@s.whatsapp.net'), '+60123456789');
    assert.equal(phoneOfJid('1234@lid'), null);
    assert.equal(phoneOfJid('1203630@g.us'), null);
  });
});

for (const backend of backends) {
  describe(`Baileys transport on ${backend}`, () => {
    it('links by QR: codes, pairing, an immediate reconnect on 515, then online', async () => {
      const r = await rig(backend);
      try {
        const [ref] = r.refs;
        const s2 = await linkByQr(r, ref!);
        const shown = links(r.events);
        assert.deepEqual(shown[0], { state: 'waiting_for_scan', qr: '2@first-ref,noise,identity,adv', expiresAt: T0 + 60_000 });
        assert.deepEqual(shown[1], { state: 'linked', phone: '+60123456789' });
        assert.equal(r.fake.of(ref!.id).length, 2);
        assert.equal(s2.createdAt, T0, 'reconnected at once, no backoff');
        assert.equal(statuses(r.events).at(-1), 'online');
        assert.equal(r.wa.stateOf(ref!.id), 'open');
        assert.equal(s2.opts.auth.creds.me?.id, '60123456789:7@s.whatsapp.net', 'the new socket logs in with the paired account');
        // Stored, and stored encrypted: the account's number is nowhere in the bytes.
        const rows = await r.t.db.query<{ data: Uint8Array }>(`select data from transport_auth where device_id = $1`, [ref!.id]);
        assert.ok(rows.rows.length >= 1);
        for (const row of rows.rows) assert.ok(!Buffer.from(row.data).includes('60123456789'), 'no plaintext in transport_auth');
        assert.equal(await new DbAuthStore(r.t.db, r.box, r.clock).hasAccount(ref!.id), true);
      } finally {
        await r.t.dispose();
      }
    });

    it('links by pairing code: asks once with the digits, shows ABCD-EFGH', async () => {
      const r = await rig(backend);
      try {
        const [ref] = r.refs;
        await r.wa.link(ref!, { method: 'pairing_code', phone: '+60123456789' });
        await r.run(0);
        const s = r.fake.last(ref!.id);
        s.qr('2@a');
        s.qr('2@b');
        await r.run(0);
        assert.equal(s.pairingPhone, '60123456789');
        assert.deepEqual(links(r.events), [{ state: 'waiting_for_code', pairingCode: 'ABCD-2345', expiresAt: T0 + 180_000 }]);
      } finally {
        await r.t.dispose();
      }
    });

    it('a link that runs out of QR codes expires; one refused otherwise fails; neither keeps auth', async () => {
      const r = await rig(backend, 2);
      try {
        const [a, b] = r.refs;
        await r.wa.link(a!, { method: 'qr' });
        await r.wa.link(b!, { method: 'qr' });
        await r.run(0);
        r.fake.last(a!.id).qr('2@a');
        r.fake.last(a!.id).close(CLOSE.timedOut, 'QR refs attempts ended');
        r.fake.last(b!.id).close(403, 'forbidden');
        await r.run(60_000);
        assert.deepEqual(links(r.events).map((p) => p.state), ['waiting_for_scan', 'expired', 'failed']);
        assert.deepEqual(links(r.events)[2], { state: 'failed', code: 'WHATSAPP_403', message: 'forbidden' });
        assert.equal(r.fake.sockets.length, 2, 'no reconnect after a failed link');
        assert.equal(await countAuthRows(r.t.db, a!.id), 0);
        assert.equal(await countAuthRows(r.t.db, b!.id), 0);
      } finally {
        await r.t.dispose();
      }
    });

    it('reconnects with growing, jittered backoff; 401 logs out and wipes; 440 stops and flags', async () => {
      const r = await rig(backend, 2);
      try {
        const [a, b] = r.refs;
        let s = await linkByQr(r, a!);
        const waits: number[] = [];
        for (let i = 0; i < 3; i++) {
          const closedAt = r.clock.now();
          s.close(428, 'connection closed');
          await r.run(0);
          assert.equal(r.wa.stateOf(a!.id), 'waiting');
          await r.run(60_000);
          s = r.fake.last(a!.id);
          waits.push(s.createdAt - closedAt);
        }
        const full = [2_000, 4_000, 8_000];
        waits.forEach((w, i) => assert.ok(w >= full[i]! / 2 && w <= full[i]!, `wait ${w} for failure ${i + 1} outside [${full[i]! / 2}, ${full[i]}]`));
        s.open();
        await r.run(0);
        const closedAt = r.clock.now();
        s.close(408, 'lost');
        await r.run(60_000);
        s = r.fake.last(a!.id);
        assert.ok(s.createdAt - closedAt <= 2_000, 'an open connection resets the backoff');
        s.open();
        await r.run(0);

        const before = r.fake.of(a!.id).length;
        s.close(CLOSE.loggedOut, 'logged out');
        await r.run(600_000);
        assert.equal(r.wa.stateOf(a!.id), 'logged_out');
        assert.equal(r.fake.of(a!.id).length, before, 'no reconnect after 401');
        assert.equal(await countAuthRows(r.t.db, a!.id), 0, 'auth wiped');
        assert.equal(statuses(r.events.filter((e) => e.deviceId === a!.id)).at(-1), 'logged_out');

        const sb = await linkByQr(r, b!, '60199999999@s.whatsapp.net');
        const count = r.fake.of(b!.id).length;
        sb.close(CLOSE.connectionReplaced, 'replaced');
        await r.run(600_000);
        assert.equal(r.wa.stateOf(b!.id), 'replaced');
        assert.equal(r.fake.of(b!.id).length, count, 'no reconnect loop after 440');
        assert.equal(statuses(r.events.filter((e) => e.deviceId === b!.id)).at(-1), 'replaced');
        assert.ok((await countAuthRows(r.t.db, b!.id)) > 0, 'a replaced device keeps its auth');
      } finally {
        await r.t.dispose();
      }
    });

    it('keeps creds and every Signal key type across a restart, encrypted under its key', async () => {
      const r = await rig(backend);
      try {
        const [ref] = r.refs;
        const s = await linkByQr(r, ref!);
        const keys = {
          'pre-key': { '1': { public: Buffer.from('pub1'), private: Buffer.from('priv1') } },
          session: { '60123000001.0': Buffer.from('session bytes') },
          'sender-key': { 'group::60123000001': Buffer.from('sender key') },
          'sender-key-memory': { 'group@g.us': { '60123000001@s.whatsapp.net': true } },
          'app-state-sync-key': { AAAA: { keyData: Buffer.from('app state key'), timestamp: 5 } },
          'app-state-sync-version': { regular: { version: 3, hash: Buffer.from('h'), indexValueMap: {} } },
          'lid-mapping': { '60123000001': '1234567@lid', '1234567_reverse': '60123000001' },
          'device-list': { '60123000001': ['0', '3'] },
          tctoken: { '60123000001@s.whatsapp.net': { token: Buffer.from('tc'), timestamp: '1700000000' } },
          'identity-key': { '60123000001.0': Buffer.from('identity') },
        };
        await s.opts.auth.keys.set(keys as never);
        s.emit('creds.update', { nextPreKeyId: 31, firstUnuploadedPreKeyId: 31 });
        await r.run(0);
        await r.wa.disconnect(ref!.id);
        const credsBefore = JSON.stringify(s.opts.auth.creds, BufferJSON.replacer);

        const again = r.restart();
        await again.connect(ref!);
        await r.run(1_000);
        const s2 = r.fake.last(ref!.id);
        assert.notEqual(s2, s);
        assert.equal(JSON.stringify(s2.opts.auth.creds, BufferJSON.replacer), credsBefore, 'the same creds');
        assert.equal(s2.opts.auth.creds.nextPreKeyId, 31);
        const sync = (await s2.opts.auth.keys.get('app-state-sync-key', ['AAAA'])).AAAA!;
        assert.equal(Buffer.from(sync.keyData!).toString(), 'app state key', 'app state keys come back as Baileys protos');
        assert.equal(Number(sync.timestamp), 5);
        for (const [type, entries] of Object.entries(keys)) {
          if (type === 'app-state-sync-key') continue;
          const got = await s2.opts.auth.keys.get(type as never, Object.keys(entries));
          const plain = (v: unknown) => JSON.parse(JSON.stringify(v, BufferJSON.replacer)) as unknown;
          assert.deepEqual(plain(got), plain(entries), type);
        }
        // A deleted key stays deleted; a batch writes many rows in one go.
        await s2.opts.auth.keys.set({ session: { '60123000001.0': null } } as never);
        assert.deepEqual(await s2.opts.auth.keys.get('session', ['60123000001.0']), {});

        const otherKey = new DbAuthStore(r.t.db, new SecretBox(randomBytes(32)), r.clock);
        await assert.rejects(otherKey.loadCreds(ref!.id), SecretBoxError, 'another key cannot read it');
        const moved = await r.t.db.query(`update transport_auth set key_id = 'elsewhere' where device_id = $1 and kind = 'tctoken'`, [ref!.id]);
        assert.equal(moved.rowCount, 1);
        await assert.rejects(Promise.resolve(s2.opts.auth.keys.get('tctoken', ['elsewhere'])), SecretBoxError, 'a value moved under another key id does not decrypt');
      } finally {
        await r.t.dispose();
      }
    });

    it('restores linked devices staggered at the configured rate, and leaves unlinked ones alone', async () => {
      const r = await rig(backend, 5, { connectsPerSecond: 2 });
      try {
        const store = new DbAuthStore(r.t.db, r.box, r.clock);
        for (const ref of r.refs.slice(0, 4)) {
          const a = await store.open(ref.id);
          Object.assign(a.state.creds, { me: { id: `6012000000${ref.id}@s.whatsapp.net` }, account: { details: Buffer.from('x') } });
          await a.saveCreds();
        }
        for (const ref of r.refs) await r.wa.connect(ref);
        await r.run(10_000);
        assert.deepEqual(r.fake.sockets.map((s) => s.createdAt - T0), [0, 500, 1_000, 1_500]);
        assert.deepEqual(r.fake.sockets.map((s) => s.opts.deviceId), r.refs.slice(0, 4).map((x) => x.id));
        assert.equal(r.wa.stateOf(r.refs[4]!.id), 'idle', 'never linked: nothing to restore');
      } finally {
        await r.t.dispose();
      }
    });

    it('logs out: tells WhatsApp, closes, wipes the auth state', async () => {
      const r = await rig(backend);
      try {
        const [ref] = r.refs;
        const s = await linkByQr(r, ref!);
        assert.ok((await countAuthRows(r.t.db, ref!.id)) > 0);
        await r.wa.logout(ref!.id);
        await r.run(600_000);
        assert.equal(s.loggedOut, true);
        assert.equal(s.ended, true);
        assert.equal(await countAuthRows(r.t.db, ref!.id), 0);
        assert.equal(r.fake.of(ref!.id).length, 2, 'no reconnect');
        assert.equal(statuses(r.events).at(-1), 'logged_out');
      } finally {
        await r.t.dispose();
      }
    });
  });
}
