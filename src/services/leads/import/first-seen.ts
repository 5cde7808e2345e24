/**
 * "Which line first had this phone?" over up to a million phones in a few MB. The digits of an
 * E.164 number (at most 15) fit a float64 exactly and never start with 0, so a number is its own
 * key: an open-addressing table of doubles plus a parallel array of line numbers costs 12 bytes a
 * slot, where a Map of strings costs ~100 bytes an entry and keeps a million strings alive.
 */
export class FirstSeen {
  private keys: Float64Array;
  private lines: Uint32Array;
  private mask: number;
  private count = 0;

  constructor(initialSlots = 1 << 14) {
    let n = 16;
    while (n < initialSlots) n *= 2;
    this.keys = new Float64Array(n);
    this.lines = new Uint32Array(n);
    this.mask = n - 1;
  }

  get size(): number {
    return this.count;
  }

  /** Bytes held by the table. */
  get bytes(): number {
    return this.keys.byteLength + this.lines.byteLength;
  }

  /** The line recorded for `e164`, or 0 after recording `line` for it. */
  firstOrAdd(e164: string, line: number): number {
    const key = Number(e164.startsWith('+') ? e164.slice(1) : e164);
    if (!Number.isSafeInteger(key) || key <= 0) throw new Error(`not an E.164 number: ${e164}`);
    let i = slot(key) & this.mask;
    for (;;) {
      const k = this.keys[i]!;
      if (k === 0) break;
      if (k === key) return this.lines[i]!;
      i = (i + 1) & this.mask;
    }
    this.keys[i] = key;
    this.lines[i] = line;
    this.count++;
    // Linear probing stays short below ~70 % full.
    if (this.count * 10 > this.keys.length * 7) this.grow();
    return 0;
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldLines = this.lines;
    this.keys = new Float64Array(oldKeys.length * 2);
    this.lines = new Uint32Array(oldKeys.length * 2);
    this.mask = this.keys.length - 1;
    for (let j = 0; j < oldKeys.length; j++) {
      const k = oldKeys[j]!;
      if (k === 0) continue;
      let i = slot(k) & this.mask;
      while (this.keys[i] !== 0) i = (i + 1) & this.mask;
      this.keys[i] = k;
      this.lines[i] = oldLines[j]!;
    }
  }
}

/** Mixes both 32-bit halves of the number (neighbouring phones must not land in neighbouring slots). */
function slot(key: number): number {
  const lo = key >>> 0;
  const hi = Math.floor(key / 4294967296) >>> 0;
  let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
