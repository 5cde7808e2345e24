/**
 * Device linking end to end on the virtual clock: the API writes a request, the process serving
 * the device (its link runner and the simulator) shows QR codes or a pairing code, and the API,
 * the database and the live stream all tell the same story. Logout and delete forget the auth
 * state; team members reach only their devices; bad input changes nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { countAuthRows, writeAuthRows } from '../../src/store/sql/auth-state.js';
import { isDeviceLinked } from '../../src/store/sql/device-links.js';
import { SimulatorTransport } from '../../src/transports/simulator.js';
import type { OutboundMessage } from '../../src/transports/transport.js';
import { expectError, ok } from '../helpers/api.js';
import { backends, type Backend } from '../helpers/db.js';
import { openLinkWorld, owner, type LinkWorld, type Owner } from '../helpers/links.js';

const T0 = Date.parse('2026-03-02T09:00:00Z');
const LINK_KEYS = ['device_id', 'state', 'method', 'qr', 'qr_svg', 'pairing_code', 'expires_at', 'error', 'updated_at'];

interface Setup {
  w: LinkWorld;
  sim: SimulatorTransport;
  a: Owner;
}

async function setup(backend: Backend, o: { start?: boolean } = {}): Promise<Setup> {
  let sim: SimulatorTransport | undefined;
  const w = await openLinkWorld(
    backend,
    T0,
    (clock, db) => {
      sim = new SimulatorTransport({
        clock,
        seed: 9,
        isLinked: (id) => isDeviceLinked(db, id),
        link: { qrRefreshMs: 1_000, qrCodes: 3, pairingDelayMs: 2_000, pairingCodeTtlMs: 60_000 },
      });
      return new Map([['simulator', sim]]);
    },
    { names: ['baileys'], start: o.start ?? true },
  );
  return { w, sim: sim!, a: await owner(w) };
}

async function close(s: Setup): Promise<void> {
  s.sim.close();
  await s.w.dispose();
}

/** Whether the simulator would send for the device now (it is linked and online). */
async function sends(sim: SimulatorTransport, deviceId: number): Promise<boolean> {
  const m: OutboundMessage = { id: 1_000_000 + deviceId, deviceId, to: '+60123000999', body: 'probe', media: null, origin: 'test', attempt: 1 };
  return (await sim.send(m)).ok;
}

function linkEvents(w: LinkWorld, deviceId: number): Record<string, unknown>[] {
  return w.live.filter((e) => e.type === 'device.link' && e.deviceId === deviceId).map((e) => e.data);
}

async function newDevice(s: Setup, body: Record<string, unknown> = { name: 'phone', linked: false }): Promise<number> {
  const d = ok(await s.a.call('POST', '/api/v1/devices', body), 201);
  await s.w.run(10);
  return d.id as number;
}

for (const backend of backends) {
  describe(`device linking through the API (${backend})`, () => {
    it('links by QR code: codes refresh, expire, and a scan brings the device online', async () => {
      const s = await setup(backend);
      try {
        const { w, a, sim } = s;
        const id = await newDevice(s);
        const d = ok(await a.call('GET', `/api/v1/devices/${id}`));
        assert.equal(d.linked, false);
        assert.equal(d.status, 'offline');
        assert.equal(await sends(sim, id), false, 'an unlinked device does not go online');
        const idle = ok(await a.call('GET', `/api/v1/devices/${id}/link`));
        assert.deepEqual(Object.keys(idle), LINK_KEYS);
        assert.equal(idle.state, 'idle');

        const t1 = w.clock.now();
        const started = ok(await a.call('POST', `/api/v1/devices/${id}/link`, { method: 'qr' }), 202);
        assert.equal(started.state, 'starting');
        assert.equal(started.method, 'qr');
        await w.run(0);
        const first = ok(await a.call('GET', `/api/v1/devices/${id}/link`));
        assert.equal(first.state, 'waiting_for_scan');
        assert.match(first.qr, new RegExp(`^fleetcast-sim:${id}:[0-9a-f]{16}$`));
        assert.match(first.qr_svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
        assert.equal(first.expires_at, new Date(t1 + 1_000).toISOString());

        // Three codes, one a second, then the link expires.
        await w.run(3_500);
        const expired = ok(await a.call('GET', `/api/v1/devices/${id}/link`));
        assert.equal(expired.state, 'expired');
        assert.equal(expired.qr, null);
        const events = linkEvents(w, id);
        assert.deepEqual(events.map((e) => e.state), ['starting', 'waiting_for_scan', 'waiting_for_scan', 'waiting_for_scan', 'expired']);
        const qrs = events.filter((e) => e.state === 'waiting_for_scan').map((e) => e.qr);
        assert.equal(new Set(qrs).size, 3, 'every refresh is a new code');
        assert.equal(events[1]!.qr_svg, first.qr_svg, 'the live event carries the SVG');
        const times = w.live.filter((e) => e.type === 'device.link' && e.deviceId === id).map((e) => e.at - t1);
        assert.deepEqual(times, [0, 0, 1_000, 2_000, 3_000]);
        for (const e of events) assert.deepEqual(Object.keys(e), LINK_KEYS, 'an event is the LinkState, nothing more');
        expectError(await a.call('POST', `/api/v1/devices/${id}/link/simulate-scan`, {}), 409, 'NOT_WAITING_FOR_SCAN');

        ok(await a.call('POST', `/api/v1/devices/${id}/link`, { method: 'qr' }), 202);
        await w.run(500);
        const scanned = ok(await a.call('POST', `/api/v1/devices/${id}/link/simulate-scan`, { phone: '+60129876543' }));
        assert.equal(scanned.state, 'linked');
        assert.equal(scanned.qr, null);
        await w.run(2_000);
        const after = ok(await a.call('GET', `/api/v1/devices/${id}`));
        assert.equal(after.linked, true);
        assert.equal(after.phone, '+60129876543');
        assert.equal(after.status, 'online');
        assert.equal(await sends(sim, id), true);
        assert.equal(ok(await a.call('GET', `/api/v1/devices/${id}/link`)).state, 'linked', 'no late code overwrote the link');
        assert.deepEqual(linkEvents(w, id).slice(5).map((e) => e.state), ['starting', 'waiting_for_scan', 'linked']);
        expectError(await a.call('POST', `/api/v1/devices/${id}/link`, { method: 'qr' }), 409, 'DEVICE_ALREADY_LINKED');
      } finally {
        await close(s);
      }
    });

    it('links by pairing code after the simulated phone enters it', async () => {
      const s = await setup(backend);
      try {
        const { w, a, sim } = s;
        const id = await newDevice(s);
        const t1 = w.clock.now();
        ok(await a.call('POST', `/api/v1/devices/${id}/link`, { method: 'pairing_code', phone: '012-345 6789' }), 202);
        await w.run(0);
        const shown = ok(await a.call('GET', `/api/v1/devices/${id}/link`));
        assert.equal(shown.state, 'waiting_for_code');
        assert.equal(shown.method, 'pairing_code');
        assert.match(shown.pairing_code, /^[A-Z0-9]{4}-[A-Z0-9]{4}$/);
        assert.equal(shown.qr, null);
        assert.equal(shown.expires_at, new Date(t1 + 60_000).toISOString());
        await w.run(4_000);
        const linked = ok(await a.call('GET', `/api/v1/devices/${id}/link`));
        assert.equal(linked.state, 'linked');
        const d = ok(await a.call('GET', `/api/v1/devices/${id}`));
        assert.deepEqual([d.linked, d.phone, d.status], [true, '+60123456789', 'online'], 'the number from the default country');
        assert.equal(await sends(sim, id), true);
      } finally {
        await close(s);
      }
    });

    it('refuses bad requests and changes nothing', async () => {
      const s = await setup(backend);
      try {
        const { w, a } = s;
        const id = await newDevice(s);
        expectError(await a.call('POST', `/api/v1/devices/${id}/link`, { method: 'pairing_code', phone: '12' }), 422, 'INVALID_PHONE');
        expectError(await a.call('POST', `/api/v1/devices/${id}/link`, { method: 'pairing_code' }), 400, 'VALIDATION_FAILED');
        expectError(await a.call('POST', `/api/v1/devices/${id}/link`, { method: 'carrier_pigeon' }), 400, 'VALIDATION_FAILED');
        expectError(await a.call('POST', `/api/v1/devices/${id}/link`, { method: 'qr', extra: 1 }), 400, 'VALIDATION_FAILED');
        expectError(await a.call('POST', `/api/v1/devices/${id}/link/simulate-scan`, {}), 409, 'NOT_WAITING_FOR_SCAN');
        expectError(await a.call('POST', `/api/v1/devices/${id}/link/simulate-scan`, { phone: 'abc' }), 422, 'INVALID_PHONE');
        const linkedSim = ok(await a.call('POST', '/api/v1/devices', { name: 'default sim' }), 201);
        assert.equal(linkedSim.linked, true, 'a simulator device is linked unless created otherwise');
        expectError(await a.call('POST', `/api/v1/devices/${linkedSim.id}/link`, { method: 'qr' }), 409, 'DEVICE_ALREADY_LINKED');
        const real = ok(await a.call('POST', '/api/v1/devices', { name: 'real', transport: 'baileys' }), 201);
        assert.equal(real.linked, false);
        expectError(await a.call('POST', `/api/v1/devices/${real.id}/link/simulate-scan`, {}), 409, 'NOT_SIMULATED');
        expectError(await a.call('POST', '/api/v1/devices', { name: 'claims', transport: 'baileys', linked: true }), 422, 'VALIDATION_FAILED');
        await w.run(5_000);
        const rows = await w.t.db.query(`select * from device_links`);
        assert.deepEqual(rows.rows, [], 'no attempt was recorded');
        assert.deepEqual(w.live.filter((e) => e.type === 'device.link'), []);
        assert.equal(ok(await a.call('GET', `/api/v1/devices/${id}`)).linked, false);
      } finally {
        await close(s);
      }
    });

    it('cancels a link: the device is idle and later codes are ignored', async () => {
      const s = await setup(backend);
      try {
        const { w, a, sim } = s;
        const id = await newDevice(s);
        ok(await a.call('POST', `/api/v1/devices/${id}/link`, { method: 'qr' }), 202);
        await w.run(0);
        assert.equal(sim.linking(id), 'qr');
        ok(await a.call('DELETE', `/api/v1/devices/${id}/link`), 204);
        await w.run(5_000);
        assert.equal(sim.linking(id), null);
        const st = ok(await a.call('GET', `/api/v1/devices/${id}/link`));
        assert.equal(st.state, 'idle');
        assert.deepEqual(linkEvents(w, id).map((e) => e.state), ['starting', 'waiting_for_scan', 'idle']);
        expectError(await a.call('POST', `/api/v1/devices/${id}/link/simulate-scan`, {}), 409, 'NOT_WAITING_FOR_SCAN');
      } finally {
        await close(s);
      }
    });

    it('logs a device out: auth wiped, logged_out, messages wait; it can be linked again', async () => {
      const s = await setup(backend);
      try {
        const { w, a, sim } = s;
        const d = ok(await a.call('POST', '/api/v1/devices', { name: 'linked sim' }), 201);
        await w.run(2_000);
        assert.equal(await sends(sim, d.id), true);
        await writeAuthRows(w.t.db, d.id, [{ kind: 'creds', keyId: '', data: Buffer.from('sealed') }, { kind: 'session', keyId: 'x', data: Buffer.from('k') }], new Date(T0));
        const out = ok(await a.call('POST', `/api/v1/devices/${d.id}/logout`));
        assert.deepEqual([out.status, out.linked], ['logged_out', false]);
        assert.equal(await countAuthRows(w.t.db, d.id), 0);
        await w.run(2_000);
        assert.equal(await sends(sim, d.id), false, 'the simulator let go of the account');
        assert.equal(ok(await a.call('GET', `/api/v1/devices/${d.id}`)).status, 'logged_out');
        ok(await a.call('POST', `/api/v1/devices/${d.id}/link`, { method: 'qr' }), 202);
        await w.run(0);
        ok(await a.call('POST', `/api/v1/devices/${d.id}/link/simulate-scan`, {}));
        await w.run(2_000);
        const back = ok(await a.call('GET', `/api/v1/devices/${d.id}`));
        assert.deepEqual([back.status, back.linked, back.phone], ['online', true, `+447700900${String(d.id % 1000).padStart(3, '0')}`]);
      } finally {
        await close(s);
      }
    });

    it('deleting a device logs it out and wipes its auth, keeping its messages', async () => {
      const s = await setup(backend);
      try {
        const { w, a, sim } = s;
        const d = ok(await a.call('POST', '/api/v1/devices', { name: 'to delete' }), 201);
        await w.run(2_000);
        await writeAuthRows(w.t.db, d.id, [{ kind: 'creds', keyId: '', data: Buffer.from('sealed') }], new Date(T0));
        await w.t.db.query(
          `insert into messages (user_id, device_id, lead_id, phone, campaign_id, body, status, not_before, created_at, sent_at)
           values ($1, $2, 1, '+60123000001', 1, 'history', 'sent', $3, $3, $3)`,
          [a.userId, d.id, new Date(T0)],
        );
        ok(await a.call('DELETE', `/api/v1/devices/${d.id}`), 204);
        await w.run(2_000);
        assert.equal(await countAuthRows(w.t.db, d.id), 0);
        assert.equal(await sends(sim, d.id), false);
        const kept = await w.t.db.query<{ body: string }>(`select body from messages where device_id = $1`, [d.id]);
        assert.deepEqual(kept.rows, [{ body: 'history' }]);
      } finally {
        await close(s);
      }
    });

    it('a team member links its assigned devices only', async () => {
      const s = await setup(backend);
      try {
        const { w, a } = s;
        const mine = await newDevice(s);
        const other = await newDevice(s);
        const m = await owner(w, { parentId: a.userId });
        await w.t.db.query(`insert into device_members (user_id, device_id) values ($1, $2)`, [m.userId, mine]);
        await w.services.auth.changed();
        ok(await m.call('POST', `/api/v1/devices/${mine}/link`, { method: 'qr' }), 202);
        expectError(await m.call('POST', `/api/v1/devices/${other}/link`, { method: 'qr' }), 404, 'DEVICE_NOT_FOUND');
        expectError(await m.call('GET', `/api/v1/devices/${other}/link`), 404, 'DEVICE_NOT_FOUND');
        expectError(await m.call('POST', `/api/v1/devices/${other}/logout`), 404, 'DEVICE_NOT_FOUND');
        await w.run(0);
        assert.equal(ok(await m.call('GET', `/api/v1/devices/${mine}/link`)).state, 'waiting_for_scan');
        assert.equal(ok(await a.call('GET', `/api/v1/devices/${other}/link`)).state, 'idle');
      } finally {
        await close(s);
      }
    });

    it('a process that takes a device over resumes its link with a fresh code', async () => {
      const s = await setup(backend, { start: false });
      try {
        const { w, a } = s;
        const id = await newDevice(s);
        ok(await a.call('POST', `/api/v1/devices/${id}/link`, { method: 'qr' }), 202);
        await w.run(1_000);
        assert.equal(ok(await a.call('GET', `/api/v1/devices/${id}/link`)).state, 'starting', 'nobody serves the device yet');
        await w.engine.start();
        await w.run(0);
        const st = ok(await a.call('GET', `/api/v1/devices/${id}/link`));
        assert.equal(st.state, 'waiting_for_scan');
        assert.match(st.qr, /^fleetcast-sim:/);
      } finally {
        await close(s);
      }
    });
  });
}
