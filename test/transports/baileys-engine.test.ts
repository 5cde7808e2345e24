/**
 * The Baileys transport under the real engine, against the fake socket on the virtual clock: what
 * WhatsApp's events do to the outbox and the leads. Receipts move messages to delivered and read,
 * a number not on WhatsApp is skipped, a reply from a LID sender reaches its lead, an opt-out word
 * (the defaults, or the tenant's own) cancels what waits for the lead, and each restriction signal
 * pauses the device without ever retrying the refused message.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { VirtualClock } from '../../src/engine/clock.js';
import { Engine } from '../../src/engine/engine.js';
import { seededRandom } from '../../src/engine/pacing.js';
import { SecretBox } from '../../src/services/secrets/secret-box.js';
import { insertCampaign } from '../../src/store/sql/campaigns.js';
import { setOptOutWords } from '../../src/store/sql/opt-out-words.js';
import { DbAuthStore } from '../../src/transports/baileys/auth-state.js';
import { BaileysTransport, waMessageId } from '../../src/transports/baileys/transport.js';
import { backends, openTestDb, type TestDb } from '../helpers/db.js';
import { fakeFactory, type FakeSocket } from '../helpers/fake-wa.js';
import { buildWorld, quietLog, type World } from '../helpers/world.js';

const T0 = Date.parse('2026-03-02T09:00:00Z');
const HOUR = 3_600_000;

interface Rig {
  t: TestDb;
  clock: VirtualClock;
  engine: Engine;
  world: World;
  sock: FakeSocket;
  fake: ReturnType<typeof fakeFactory>;
  restricted: { until: number; reason: string }[];
  run(ms: number): Promise<void>;
  messages(): Promise<{ id: number; lead_id: number; phone: string; status: string; attempts: number; error_code: string | null; error: string | null; transport_id: string | null }[]>;
  dispose(): Promise<void>;
}

async function rig(backend: (typeof backends)[number], leads: number, before?: (fake: ReturnType<typeof fakeFactory>) => void): Promise<Rig> {
  const clock = new VirtualClock(T0);
  const t = await openTestDb(backend, (p) => clock.track(p));
  const world = await buildWorld(t.db, { devices: 1, leads, startsAt: new Date(T0), device: { transport: 'baileys', minDelayMs: 0, maxDelayMs: 0, linked: true } }, new Date(T0));
  const box = new SecretBox(randomBytes(32));
  // A device paired earlier: its account is in the database.
  const auth = await new DbAuthStore(t.db, box, clock).open(world.deviceIds[0]!);
  Object.assign(auth.state.creds, { me: { id: '60111111111:2@s.whatsapp.net' }, account: { details: Buffer.from('x') } });
  await auth.saveCreds();
  const fake = fakeFactory(() => clock.now());
  before?.(fake);
  const wa = new BaileysTransport({ db: t.db, clock, box, socketFactory: fake.factory, log: quietLog, random: seededRandom(2), ackWaitMs: 3_000 });
  const engine = new Engine(t.db, clock, new Map([['baileys', wa]]), quietLog, {
    dispatcher: { random: seededRandom(4), leaseTtlMs: HOUR },
    maintenance: { intervalMs: 86_400_000 },
    sequences: { pollMs: HOUR },
  });
  const restricted: { until: number; reason: string }[] = [];
  engine.events.on('device.restricted', (e) => restricted.push({ until: e.until, reason: e.reason }));
  await engine.start();
  const run = async (ms: number) => {
    await clock.advanceTo(clock.now() + ms);
    await clock.settle();
  };
  await run(0);
  const sock = fake.last(world.deviceIds[0]!);
  return {
    t,
    clock,
    engine,
    world,
    sock,
    fake,
    restricted,
    run,
    messages: async () =>
      (await t.db.query<Awaited<ReturnType<Rig['messages']>>[number]>(`select id, lead_id, phone, status, attempts, error_code, error, transport_id from messages order by id`)).rows,
    dispose: async () => {
      let stopped = false;
      const p = engine.stop().then(() => (stopped = true));
      await clock.runUntil(Number.MAX_SAFE_INTEGER, () => stopped);
      await p;
      await t.dispose();
    },
  };
}

const digits = (phone: string) => phone.slice(1);

for (const backend of backends) {
  describe(`Baileys transport under the engine on ${backend}`, () => {
    it('sends with outbox ids, skips numbers not on WhatsApp, records receipts, answers retries from the outbox', async () => {
      const r = await rig(backend, 3, () => undefined);
      try {
        const before = await r.messages();
        r.sock.absent.add(digits(before[1]!.phone));
        r.sock.open();
        await r.run(60_000);
        const rows = await r.messages();
        assert.deepEqual(rows.map((m) => m.status), ['sent', 'skipped', 'sent']);
        assert.equal(rows[1]!.error_code, 'NOT_ON_WHATSAPP');
        assert.match(rows[1]!.error!, /is not on WhatsApp/);
        assert.deepEqual(rows.map((m) => m.attempts), [1, 1, 1]);
        assert.equal(rows[0]!.transport_id, waMessageId(rows[0]!.id));
        assert.deepEqual(
          r.sock.sent.map((s) => [s.jid, s.messageId, s.content]),
          [rows[0]!, rows[2]!].map((m) => [`${digits(m.phone)}@s.whatsapp.net`, waMessageId(m.id), { text: 'Hello' }]),
        );
        assert.deepEqual(r.sock.checked.sort(), rows.map((m) => digits(m.phone)).sort(), 'each number checked once');
        const cached = await r.t.db.query<{ phone: string; on_whatsapp: boolean }>(`select phone, on_whatsapp from wa_numbers order by phone`);
        assert.deepEqual(cached.rows.map((c) => c.on_whatsapp), [true, false, true]);

        const key = (m: { id: number; phone: string }) => ({ id: waMessageId(m.id), remoteJid: `${digits(m.phone)}@s.whatsapp.net`, fromMe: true });
        r.sock.emit('messages.update', [
          { key: key(rows[0]!), update: { status: 3 } },
          { key: key(rows[2]!), update: { status: 3 } },
          { key: { id: '3EB0NOTOURS', remoteJid: 'x@s.whatsapp.net', fromMe: true }, update: { status: 4 } },
        ]);
        await r.run(5_000);
        r.sock.emit('messages.update', [{ key: key(rows[0]!), update: { status: 4 } }]);
        await r.run(5_000);
        assert.deepEqual((await r.messages()).map((m) => m.status), ['read', 'skipped', 'delivered']);

        assert.deepEqual(await r.sock.opts.getMessage(key(rows[0]!)), { conversation: 'Hello' });
        assert.equal(await r.sock.opts.getMessage({ id: waMessageId(999_999), remoteJid: 'x', fromMe: true }), undefined);
      } finally {
        await r.dispose();
      }
    });

    it('a reply from a LID sender reaches its lead; opt-out words (defaults, then the tenant’s) cancel what waits', async () => {
      const r = await rig(backend, 3);
      try {
        r.sock.open();
        await r.run(60_000);
        const rows = await r.messages();
        const [l1, l2, l3] = rows;
        const later = await insertCampaign(r.t.db, r.world.userId, { name: 'later', body: 'Again', startsAt: new Date(T0 + 86_400_000), windowId: null }, new Date(T0));
        for (const m of rows) {
          await r.t.db.query(
            `insert into messages (user_id, device_id, lead_id, phone, campaign_id, body, status, not_before, created_at)
             values ($1, $2, $3, $4, $5, 'Again', 'pending', $6, $6)`,
            [r.world.userId, r.world.deviceIds[0], m.lead_id, m.phone, later, new Date(T0 + 86_400_000)],
          );
        }
        const upsert = (remoteJid: string, text: string, extra: Record<string, string> = {}) =>
          r.sock.emit('messages.upsert', { type: 'notify', messages: [{ key: { remoteJid, fromMe: false, id: `IN${Math.random()}`, ...extra }, message: { conversation: text } }] });
        // A LID sender with no alternate jid: resolved through the socket's lid mapping.
        r.sock.lids.set('88001@lid', `${digits(l3!.phone)}@s.whatsapp.net`);
        upsert('88001@lid', 'Berhenti!');
        // A LID sender whose phone number came with the message.
        upsert('88002@lid', 'thanks, interested', { remoteJidAlt: `${digits(l2!.phone)}@s.whatsapp.net` });
        // Groups and our own messages are not replies.
        upsert('120363@g.us', 'STOP');
        r.sock.emit('messages.upsert', { type: 'notify', messages: [{ key: { remoteJid: `${digits(l1!.phone)}@s.whatsapp.net`, fromMe: true, id: 'OWN' }, message: { conversation: 'STOP' } }] });
        await r.run(1_000);
        const leads = async () =>
          (await r.t.db.query<{ id: number; opted: boolean; replied: boolean }>(`select id, opted_out_at is not null as opted, last_reply_at is not null as replied from leads order by id`)).rows;
        assert.deepEqual((await leads()).map((l) => [l.opted, l.replied]), [[false, false], [false, true], [true, true]]);
        const waiting = async () => (await r.t.db.query<{ lead_id: number; status: string; error_code: string | null }>(`select lead_id, status, error_code from messages where campaign_id = $1 order by id`, [later])).rows;
        assert.deepEqual((await waiting()).map((m) => [m.status, m.error_code]), [['pending', null], ['pending', null], ['cancelled', 'opted_out']]);

        // The tenant's own words replace the defaults.
        await setOptOutWords(r.t.db, r.world.userId, ['tak nak'], new Date(T0));
        upsert(`${digits(l1!.phone)}@s.whatsapp.net`, 'STOP');
        await r.run(1_000);
        assert.equal((await leads())[0]!.opted, false, 'STOP is not one of the tenant’s words');
        upsert(`${digits(l1!.phone)}:4@s.whatsapp.net`, 'Tak nak.');
        await r.run(1_000);
        assert.equal((await leads())[0]!.opted, true);
        assert.deepEqual((await waiting()).map((m) => m.status), ['cancelled', 'pending', 'cancelled']);
      } finally {
        await r.dispose();
      }
    });

    it('error 463 pauses the device until the restriction ends and never retries that message', async () => {
      const r = await rig(backend, 3);
      try {
        let first = true;
        r.sock.timelock = { isActive: true, timeEnforcementEnds: new Date(T0 + 6 * HOUR) };
        r.sock.onSend = (id, jid) => {
          if (!first) return;
          first = false;
          r.sock.emit('messages.update', [{ key: { id, remoteJid: jid, fromMe: true }, update: { status: 0, messageStubParameters: ['463'] } }]);
        };
        r.sock.open();
        await r.run(HOUR);
        let rows = await r.messages();
        assert.deepEqual(rows.map((m) => [m.status, m.attempts]), [['failed', 1], ['pending', 0], ['pending', 0]]);
        assert.equal(rows[0]!.error_code, 'RESTRICTED');
        assert.equal(r.sock.sent.length, 1, 'nothing more was sent while restricted');
        const dev = await r.t.db.query<{ paused_until: Date }>(`select paused_until from devices where id = $1`, [r.world.deviceIds[0]]);
        assert.equal(dev.rows[0]!.paused_until.getTime(), T0 + 6 * HOUR);
        assert.ok(r.restricted.some((e) => e.until === T0 + 6 * HOUR));
        r.sock.timelock = { isActive: false };
        await r.run(6 * HOUR);
        rows = await r.messages();
        assert.deepEqual(rows.map((m) => m.status), ['failed', 'sent', 'sent']);
        assert.equal(r.sock.sent.filter((s) => s.messageId === waMessageId(rows[0]!.id)).length, 1, 'the refused message was never sent again');
      } finally {
        await r.dispose();
      }
    });

    it('a reachout time lock and a message cap pause the device as WhatsApp announces them', async () => {
      const r = await rig(backend, 1);
      try {
        r.sock.emit('connection.update', { reachoutTimeLock: { isActive: true, timeEnforcementEnds: new Date(T0 + 2 * HOUR) } });
        await r.run(0);
        const paused = async () => (await r.t.db.query<{ paused_until: Date | null }>(`select paused_until from devices`)).rows[0]!.paused_until?.getTime();
        assert.equal(await paused(), T0 + 2 * HOUR);
        r.sock.emit('message-capping.update', { capping_status: 'FIRST_WARNING' as never, cycle_end_timestamp: String((T0 + 9 * HOUR) / 1000) });
        await r.run(0);
        assert.equal(await paused(), T0 + 2 * HOUR, 'a warning is not a cap');
        r.sock.emit('message-capping.update', { capping_status: 'CAPPED' as never, cycle_end_timestamp: String((T0 + 30 * HOUR) / 1000) });
        await r.run(0);
        assert.equal(await paused(), T0 + 30 * HOUR);
        assert.deepEqual(r.restricted.map((e) => e.until), [T0 + 2 * HOUR, T0 + 30 * HOUR]);
        r.sock.open();
        await r.run(HOUR);
        assert.equal(r.sock.sent.length, 0, 'a paused device sends nothing');
      } finally {
        await r.dispose();
      }
    });
  });
}
