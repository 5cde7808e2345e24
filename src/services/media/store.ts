/**
 * Media files on disk, named by the sha256 of their bytes: the same file uploaded twice (by one
 * tenant or by two) is stored once, and a name never changes meaning. Files arrive in `tmp/` and
 * are renamed into place whole, so a reader never sees half a file.
 *
 *   <dir>/tmp/<random>.part      arriving, or being re-encoded
 *   <dir>/ab/abcdef...           stored (the first two hex digits fan the files out)
 */
import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { AppError } from '../errors.js';
import { SNIFF_BYTES } from './limits.js';

const KEY = /^[0-9a-f]{64}$/;

/** The path of a stored file. Keys are sha256 hex digests; anything else is refused, never joined. */
export function mediaPath(dir: string, storageKey: string): string {
  if (!KEY.test(storageKey)) throw new Error(`invalid media storage key: ${storageKey.slice(0, 80)}`);
  return join(dir, storageKey.slice(0, 2), storageKey);
}

export interface Received {
  /** The temporary file holding the bytes. */
  path: string;
  bytes: number;
  sha256: string;
  /** The first SNIFF_BYTES bytes (or all of them), to tell the type. */
  head: Buffer;
}

export interface ReceiveOptions {
  /** The limit, once the start of the file is known (its type decides it). */
  limitFor(head: Buffer): number;
  /** Called with the limit when the bytes pass it; what it throws is the error. */
  onTooLarge(limit: number): Error;
  /** Called when the source fails (a broken upload, a dropped download); what it returns is thrown. */
  onSourceError(err: unknown): Error;
  /**
   * Whether to destroy the source when refusing it. A download is: its connection is dropped at
   * once. An upload is not: the HTTP layer still has to answer 413 on that connection.
   */
  destroySource: boolean;
}

export class MediaStore {
  constructor(readonly dir: string) {}

  private get tmpDir(): string {
    return join(this.dir, 'tmp');
  }

  /** A new temporary path (its directory created on first use, not by the constructor). */
  async tempPath(): Promise<string> {
    await mkdir(this.tmpDir, { recursive: true });
    return join(this.tmpDir, `${randomUUID()}.part`);
  }

  /**
   * Streams `source` to a temporary file, hashing and counting as it goes, and stops as soon as
   * it passes the limit: an oversized file never reaches the disk whole. On any failure the
   * temporary file is removed.
   */
  async receive(source: NodeJS.ReadableStream | Buffer, o: ReceiveOptions): Promise<Received> {
    const path = await this.tempPath();
    const input = Buffer.isBuffer(source) ? Readable.from([source]) : source instanceof Readable ? source : Readable.from(source as AsyncIterable<Buffer>);
    const out = createWriteStream(path);
    const hash = createHash('sha256');
    const headParts: Buffer[] = [];
    let headBytes = 0;
    let bytes = 0;
    let limit = Number.POSITIVE_INFINITY;
    let decided = false;
    // A failing disk is ours to report (500), not a broken upload or download.
    let writeError: unknown = null;
    out.once('error', (err) => (writeError = err));
    try {
      try {
        for await (const chunk of input.iterator({ destroyOnReturn: o.destroySource })) {
          const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
          if (headBytes < SNIFF_BYTES) {
            const part = buf.subarray(0, SNIFF_BYTES - headBytes);
            headParts.push(part);
            headBytes += part.length;
          }
          bytes += buf.length;
          if (!decided && headBytes >= SNIFF_BYTES) {
            limit = o.limitFor(Buffer.concat(headParts));
            decided = true;
          }
          if (bytes > limit) throw o.onTooLarge(limit);
          hash.update(buf);
          if (!out.write(buf)) await once(out, 'drain');
        }
      } catch (err) {
        if (err instanceof AppError || writeError !== null) throw err;
        throw o.onSourceError(err);
      }
      const head = Buffer.concat(headParts);
      if (!decided) {
        limit = o.limitFor(head);
        if (bytes > limit) throw o.onTooLarge(limit);
      }
      out.end();
      await once(out, 'close');
      return { path, bytes, sha256: hash.digest('hex'), head };
    } catch (err) {
      await this.discardStream(out, path);
      throw err;
    }
  }

  private async discardStream(out: ReturnType<typeof createWriteStream>, path: string): Promise<void> {
    // The file may still be opening: removing it before the stream closes would race its creation.
    if (!out.closed) {
      const closed = new Promise<void>((resolve) => out.once('close', () => resolve()));
      out.destroy();
      await closed;
    }
    await rm(path, { force: true });
  }

  /** Writes bytes made here (a re-encoded image) to a new temporary file. */
  async writeTemp(data: Buffer): Promise<string> {
    const path = await this.tempPath();
    await writeFile(path, data);
    return path;
  }

  /**
   * Moves a temporary file into place under its key. If the key is stored already the bytes are
   * the same, so the temporary file is dropped. Run under the key's lock (see lockStorageKey).
   */
  async commit(tempPath: string, storageKey: string): Promise<void> {
    const target = mediaPath(this.dir, storageKey);
    if (await exists(target)) {
      await rm(tempPath, { force: true });
      return;
    }
    await mkdir(join(this.dir, storageKey.slice(0, 2)), { recursive: true });
    await rename(tempPath, target);
  }

  /** Removes a stored file (gone already is fine). Run under the key's lock. */
  async remove(storageKey: string): Promise<void> {
    await rm(mediaPath(this.dir, storageKey), { force: true });
  }

  async discard(tempPath: string): Promise<void> {
    await rm(tempPath, { force: true });
  }

  open(storageKey: string): Readable {
    return createReadStream(mediaPath(this.dir, storageKey));
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
