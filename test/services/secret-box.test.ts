/**
 * Secrets at rest: a sealed value opens only with its key and its context, is never the plaintext,
 * and the key comes from the configuration or a 0600 file generated once in the data directory.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config.js';
import { loadSecretKey, parseSecretKey, SecretBox, SecretBoxError, SECRET_KEY_FILE } from '../../src/services/secrets/secret-box.js';

describe('secret box', () => {
  it('seals with AES-256-GCM: opens with the same key and context only, and detects tampering', () => {
    const box = new SecretBox(randomBytes(32));
    const sealed = box.seal('access-token-123', 'cloud:7');
    assert.ok(!sealed.includes(Buffer.from('access-token-123')));
    assert.equal(box.open(sealed, 'cloud:7').toString(), 'access-token-123');
    assert.notDeepEqual(box.seal('access-token-123', 'cloud:7'), sealed, 'a fresh nonce every time');
    assert.throws(() => box.open(sealed, 'cloud:8'), SecretBoxError);
    assert.throws(() => new SecretBox(randomBytes(32)).open(sealed, 'cloud:7'), SecretBoxError);
    const tampered = Buffer.from(sealed);
    tampered[tampered.length - 1]! ^= 1;
    assert.throws(() => box.open(tampered, 'cloud:7'), SecretBoxError);
    assert.throws(() => box.open(Buffer.from('short'), 'cloud:7'), SecretBoxError);
    assert.deepEqual(box.openJson(box.sealJson({ a: [1, 'x'] }, 'c'), 'c'), { a: [1, 'x'] });
  });

  it('reads a key as hex or base64, and refuses anything that is not 32 bytes', () => {
    const key = randomBytes(32);
    assert.deepEqual(parseSecretKey(key.toString('hex')), key);
    assert.deepEqual(parseSecretKey(key.toString('base64')), key);
    assert.equal(parseSecretKey(randomBytes(16).toString('base64')), null);
    assert.equal(parseSecretKey('not a key at all'), null);
    assert.deepEqual(loadConfig({ FLEETCAST_SECRET_KEY: key.toString('base64') }).FLEETCAST_SECRET_KEY, key);
    assert.throws(() => loadConfig({ FLEETCAST_SECRET_KEY: 'short' }), /FLEETCAST_SECRET_KEY/);
  });

  it('generates a key file once, mode 0600, and reads it back on the next start', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleetcast-key-'));
    try {
      const first = loadSecretKey(undefined, dir);
      assert.equal(first.source, 'generated');
      assert.equal(statSync(join(dir, SECRET_KEY_FILE)).mode & 0o777, 0o600);
      const second = loadSecretKey(undefined, dir);
      assert.equal(second.source, 'file');
      assert.deepEqual(second.key, first.key);
      assert.deepEqual(parseSecretKey(readFileSync(join(dir, SECRET_KEY_FILE), 'utf8')), first.key);
      const configured = randomBytes(32);
      assert.deepEqual(loadSecretKey(configured, dir), { key: configured, source: 'environment' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
