/**
 * The simulator's send log is what lets one process prove what another sent before it died: the
 * log is read at start and read again, up to its last whole line, whenever sends must be proven.
 */
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SystemClock } from '../../src/engine/clock.js';
import { SimulatorTransport } from '../../src/transports/simulator.js';
import type { OutboundMessage } from '../../src/transports/transport.js';

const clock = new SystemClock();
const msg = (id: number, deviceId = 1): OutboundMessage => ({ id, deviceId, to: '+447700900001', body: 'hi', media: null, origin: 'campaign:1', attempt: 1 });

describe('simulator send log shared by processes', () => {
  it('proves sends another simulator logged after this one started, and never a line still being written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleetcast-simlog-'));
    const logFile = join(dir, 'sends.jsonl');
    const a = new SimulatorTransport({ clock, logFile, tag: 'a' });
    const b = new SimulatorTransport({ clock, logFile, tag: 'b' });
    try {
      await a.connect({ id: 1, userId: 1, phone: null });
      assert.equal((await a.send(msg(10))).ok, true);
      assert.equal((await a.send(msg(11))).ok, true);
      // b started before a sent anything, yet it can speak for a's sends now.
      const proofs = await b.proveSends([10, 11, 12]);
      assert.equal(proofs.get(10)?.status, 'sent');
      assert.equal(proofs.get(11)?.status, 'sent');
      assert.deepEqual(proofs.get(12), { status: 'not_sent' });

      // Half a line (a writer caught mid-append) proves nothing until its end arrives.
      const line = JSON.stringify({ at: clock.now(), device: 1, to: '+447700900001', message: 12, origin: 'campaign:1', attempt: 1, outcome: 'sent', by: 'c' });
      appendFileSync(logFile, line.slice(0, 20));
      assert.deepEqual((await b.proveSends([12])).get(12), { status: 'not_sent' });
      appendFileSync(logFile, line.slice(20) + '\n');
      assert.equal((await b.proveSends([12])).get(12)?.status, 'sent');

      // A failed attempt is logged too, and proves no send.
      await a.disconnect(1);
      assert.equal((await a.send(msg(13))).ok, false);
      assert.deepEqual((await b.proveSends([13])).get(13), { status: 'not_sent' });
      const tags = readFileSync(logFile, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { by: string; message: number }).message);
      assert.deepEqual(tags, [10, 11, 12, 13]);
    } finally {
      a.close();
      b.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
