/** PGlite's buffer cache is the operator's trade of memory for throughput: configured, checked, applied. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.js';
import { openStore } from '../../src/store/open.js';

describe('FLEETCAST_PGLITE_CACHE_MB', () => {
  it('defaults to 32, accepts a whole number of MB from 8, and names the setting when refused', () => {
    assert.equal(loadConfig({}).FLEETCAST_PGLITE_CACHE_MB, 32);
    assert.equal(loadConfig({ FLEETCAST_PGLITE_CACHE_MB: '96' }).FLEETCAST_PGLITE_CACHE_MB, 96);
    for (const bad of ['4', '12.5', 'lots']) {
      assert.throws(() => loadConfig({ FLEETCAST_PGLITE_CACHE_MB: bad }), (e: unknown) => e instanceof ConfigError && /FLEETCAST_PGLITE_CACHE_MB/.test(e.message));
    }
  });

  it('sets the embedded database shared_buffers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleetcast-cache-'));
    try {
      const db = await openStore({ dataDir: dir, pgliteCacheMb: 24 });
      try {
        const res = await db.query<{ shared_buffers: string }>('show shared_buffers');
        assert.equal(res.rows[0]!.shared_buffers, '24MB');
      } finally {
        await db.close();
      }
      const again = await openStore({ dataDir: dir });
      try {
        assert.equal((await again.query<{ shared_buffers: string }>('show shared_buffers')).rows[0]!.shared_buffers, '32MB');
      } finally {
        await again.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
