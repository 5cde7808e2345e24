/**
 * `fleetcast demo` as a newcomer runs it: it prints the address and the credentials, the seeded
 * devices come online and the VIP campaign sends, a new simulated device links through the QR flow
 * (the QR code shown, then scanned), and a second start finds the data and adds nothing.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { startFleetcast, tempDir } from '../helpers/process.js';

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function signIn(base: string, password: string): Promise<(method: string, path: string, body?: unknown) => Promise<any>> {
  const res = await fetch(`${base}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'demo@fleetcast.local', password }) });
  assert.equal(res.status, 200);
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0]!;
  const csrf = ((await res.json()) as { csrf_token: string }).csrf_token;
  return async (method, path, body) => {
    const r = await fetch(base + path, {
      method,
      headers: { cookie, 'x-csrf-token': csrf, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await r.text();
    assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
}

describe('fleetcast demo', () => {
  const tmp = tempDir('demo');
  const dir = tmp.path;
  after(() => tmp.remove());

  it('starts seeded, links a new simulated device by QR, and restarts without seeding again', { timeout: 240_000 }, async () => {
    const env = { FLEETCAST_LOG_LEVEL: 'warn' };
    const first = startFleetcast(['demo', '--data-dir', dir, '--port', '0', '--password', 'demo password one'], env);
    try {
      const base = await first.ready(120_000);
      await until('the credentials', async () => (first.stdout.includes('password: demo password one') ? true : undefined));
      assert.match(first.stdout, /sample data created/);
      assert.match(first.stdout, /demo@fleetcast\.local/);
      const call = await signIn(base, 'demo password one');
      const home = await until('5 devices online and the VIP campaign sending', async () => {
        const h = await call('GET', '/api/v1/dashboard');
        return h.devices.online === 5 && h.today.sent > 0 ? h : undefined;
      });
      assert.equal(home.campaigns.find((c: { name: string }) => c.name === 'VIP welcome')?.audience_size, 25);

      const d = await call('POST', '/api/v1/devices', { name: 'Newcomer phone', linked: false });
      await call('POST', `/api/v1/devices/${d.id}/link`, { method: 'qr' });
      const qr = await until('the QR code', async () => {
        const l = await call('GET', `/api/v1/devices/${d.id}/link`);
        return l.state === 'waiting_for_scan' ? l : undefined;
      });
      assert.ok(qr.qr && qr.qr_svg.startsWith('<svg'), JSON.stringify(qr).slice(0, 200));
      const scanned = await call('POST', `/api/v1/devices/${d.id}/link/simulate-scan`, {});
      assert.equal(scanned.state, 'linked');
      await until('the new device online', async () => ((await call('GET', `/api/v1/devices/${d.id}`)).status === 'online' ? true : undefined));
    } finally {
      await first.stop('SIGTERM');
    }

    const second = startFleetcast(['demo', '--data-dir', dir, '--port', '0', '--password', 'demo password two'], env);
    try {
      const base = await second.ready(120_000);
      await until('the credentials', async () => (second.stdout.includes('password: demo password two') ? true : undefined));
      assert.doesNotMatch(second.stdout, /sample data created/);
      const call = await signIn(base, 'demo password two');
      const devices = await call('GET', '/api/v1/devices?limit=500');
      assert.deepEqual(devices.data.map((x: { name: string }) => x.name), ['Demo phone 1', 'Demo phone 2', 'Demo phone 3', 'Demo phone 4', 'Demo phone 5', 'Newcomer phone']);
      const leads = await call('GET', '/api/v1/leads?limit=500');
      assert.equal(leads.data.length, 500);
      assert.deepEqual((await call('GET', `/api/v1/leads?limit=500&cursor=${leads.next_cursor}`)).data, []);
      assert.equal((await call('GET', '/api/v1/campaigns')).data.length, 2);
    } finally {
      await second.stop('SIGTERM');
    }
  });
});
