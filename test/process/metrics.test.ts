/**
 * `fleetcast serve` with metrics: /metrics on the main port behind FLEETCAST_METRICS_TOKEN, and
 * /metrics, /healthz and /readyz on the admin port (FLEETCAST_METRICS_PORT), nothing else there.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { killAll, startFleetcast, tempDir } from '../helpers/process.js';

const TOKEN = 'scraper-token-abcdef0123';

describe('fleetcast serve with metrics', () => {
  it('serves /metrics behind the token on the main port and on its own port', async () => {
    const dir = tempDir('metrics');
    try {
      const server = startFleetcast(['serve'], {
        HOST: '127.0.0.1',
        PORT: '0',
        FLEETCAST_LOG_LEVEL: 'warn',
        FLEETCAST_DATA_DIR: dir.path,
        FLEETCAST_METRICS_TOKEN: TOKEN,
        FLEETCAST_METRICS_PORT: '0',
      });
      const main = await server.ready(60_000);
      const admin = /^metrics on (\S+)$/m.exec(server.stdout)?.[1];
      assert.ok(admin, server.stdout);
      assert.notEqual(admin, main);
      const auth = { authorization: `Bearer ${TOKEN}` };

      assert.equal((await fetch(`${main}/metrics`)).status, 401);
      const scraped = await fetch(`${main}/metrics`, { headers: auth });
      assert.equal(scraped.status, 200);
      const text = await scraped.text();
      for (const m of ['fleetcast_messages_sent_total', 'fleetcast_dispatch_latency_seconds', 'fleetcast_outbox_messages', 'fleetcast_devices', 'fleetcast_webhook_deliveries_total', 'fleetcast_process_cpu']) {
        assert.match(text, new RegExp(`^# TYPE ${m}`, 'm'), `${m} is exposed`);
      }

      assert.equal((await fetch(`${admin}/metrics`)).status, 401, 'the token is needed there too when it is set');
      assert.equal((await fetch(`${admin}/metrics`, { headers: auth })).status, 200);
      assert.equal((await fetch(`${admin}/healthz`)).status, 200);
      assert.equal((await fetch(`${admin}/readyz`)).status, 200);
      assert.equal((await fetch(`${admin}/api/v1/me`)).status, 404, 'the API is not on the admin port');

      assert.deepEqual(await server.stop('SIGTERM'), { code: 0, signal: null }, server.stderr);
    } finally {
      await killAll();
      dir.remove();
    }
  });
});
