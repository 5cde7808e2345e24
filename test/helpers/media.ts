/**
 * Files for media tests, made on the spot: images with sharp, MP4 containers box by box, a PNG
 * that declares a gigantic canvas, and a local HTTP server whose routes misbehave on purpose.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';

/**
 * A 4000 x 3000 PNG of coarse random noise: a few MB as PNG (each 4 x 4 block is one colour, which
 * PNG's filters compress), but far more than 350 KB as a JPEG at any quality.
 */
export async function noisyPng(width = 4000, height = 3000): Promise<Buffer> {
  const w = width / 4;
  const h = height / 4;
  return sharp(randomBytes(w * h * 3), { raw: { width: w, height: h, channels: 3 } })
    .resize({ width, height, kernel: 'nearest' })
    .png({ compressionLevel: 6 })
    .toBuffer();
}

/** A plain image with a diagonal band, so it is not one colour. */
export async function plainImage(width: number, height: number, format: 'png' | 'jpeg' = 'png'): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <rect width="100%" height="100%" fill="#3366cc"/><line x1="0" y1="0" x2="${width}" y2="${height}" stroke="#ffcc00" stroke-width="20"/></svg>`;
  const img = sharp(Buffer.from(svg));
  return format === 'png' ? img.png().toBuffer() : img.jpeg().toBuffer();
}

/** Left half fully transparent (black underneath), right half opaque red. */
export async function halfTransparentPng(width = 200, height = 100): Promise<Buffer> {
  const px = Buffer.alloc(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = width / 2; x < width; x++) px.set([255, 0, 0, 255], (y * width + x) * 4);
  }
  return sharp(px, { raw: { width, height, channels: 4 } }).png().toBuffer();
}

/**
 * A 400 x 200 JPEG, left half red and right half blue, whose EXIF orientation (6) says "turn 90
 * degrees clockwise to show": upright it is 200 x 400, red on top.
 */
export async function rotatedJpeg(): Promise<Buffer> {
  const px = Buffer.alloc(400 * 200 * 3);
  for (let y = 0; y < 200; y++) {
    for (let x = 0; x < 400; x++) px.set(x < 200 ? [255, 0, 0] : [0, 0, 255], (y * 400 + x) * 3);
  }
  return sharp(px, { raw: { width: 400, height: 200, channels: 3 } })
    .jpeg({ quality: 90 })
    .withMetadata({ orientation: 6, exif: { IFD0: { Copyright: 'secret-exif-marker' } } })
    .toBuffer();
}

/** An animated GIF of two 100 x 100 frames: red, then blue. */
export async function animatedGif(): Promise<Buffer> {
  const px = Buffer.alloc(100 * 200 * 3);
  for (let i = 0; i < 100 * 200; i++) px.set(i < 100 * 100 ? [255, 0, 0] : [0, 0, 255], i * 3);
  return sharp(px, { raw: { width: 100, height: 200, channels: 3, pageHeight: 100 } }).gif().toBuffer();
}

function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** A valid PNG header declaring width x height pixels, with a token of data: a decompression bomb's shape. */
export function bombPng(width = 30000, height = 30000): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', ihdr), pngChunk('IDAT', Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])), pngChunk('IEND', Buffer.alloc(0))]);
}

function box(type: string, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(8 + body.length);
  head.write(type, 4, 'latin1');
  return Buffer.concat([head, body]);
}

function track(codec: string): Buffer {
  // stsd: version/flags, entry count, one sample entry (its fields do not matter here).
  const stsd = box('stsd', Buffer.from([0, 0, 0, 0, 0, 0, 0, 1]), box(codec, Buffer.alloc(78)));
  return box('trak', box('mdia', box('minf', box('stbl', stsd))));
}

/** An MP4 container: ftyp, moov with one track per codec, and `payload` bytes of mdat. */
export function mp4(o: { brand?: string; codecs?: string[]; payload?: number; moov?: boolean } = {}): Buffer {
  const brand = o.brand ?? 'isom';
  const ftyp = box('ftyp', Buffer.from(brand, 'latin1'), Buffer.from([0, 0, 2, 0]), Buffer.from(`${brand}mp41`, 'latin1'));
  const moov = box('moov', box('mvhd', Buffer.alloc(100)), ...(o.codecs ?? ['avc1', 'mp4a']).map(track));
  const mdat = box('mdat', randomBytes(o.payload ?? 4096));
  return Buffer.concat(o.moov === false ? [ftyp, mdat] : [ftyp, moov, mdat]);
}

/** Every regular file under `dir`, relative to it. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p, `${rel}${n}/`);
      else out.push(`${rel}${n}`);
    }
  };
  walk(dir, '');
  return out.sort();
}

export interface TestServer {
  url: string;
  port: number;
  /** Requests seen, by path. */
  hits: string[];
  /** Bytes the endless route wrote before its client went away, and whether it did. */
  endless: { written: number; closed: boolean };
  close(): Promise<void>;
}

/**
 * A local HTTP server for fetches:
 *   /file/NAME          the body registered under NAME (content-type as registered)
 *   /missing            404
 *   /chain/N[/NAME]     N redirects, then /file/NAME
 *   /loop               redirects to itself
 *   /slow               headers, a few bytes, then nothing
 *   /endless            a body without length that never ends (until the client goes)
 *   /declared-huge      Content-Length of 1 GB
 */
export async function startServer(files: Record<string, { body: Buffer; type: string }>): Promise<TestServer> {
  const hits: string[] = [];
  const endless = { written: 0, closed: false };
  const sockets = new Set<import('node:net').Socket>();
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    hits.push(path);
    const chain = /^\/chain\/(\d+)(?:\/(.+))?$/.exec(path);
    if (path.startsWith('/file/')) {
      const f = files[decodeURIComponent(path.slice(6))];
      if (!f) return void res.writeHead(404).end('no such file');
      res.writeHead(200, { 'content-type': f.type, 'content-length': f.body.length });
      return void res.end(f.body);
    }
    if (path === '/missing') return void res.writeHead(404, { 'content-type': 'text/plain' }).end('not here');
    if (chain) {
      const n = Number(chain[1]);
      const name = chain[2] ?? 'photo.png';
      return void res.writeHead(302, { location: n > 1 ? `/chain/${n - 1}/${name}` : `/file/${name}` }).end();
    }
    if (path === '/loop') return void res.writeHead(302, { location: '/loop' }).end();
    if (path === '/slow') {
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': 1000 });
      res.write(Buffer.from([0x89, 0x50]));
      return;
    }
    if (path === '/endless') {
      res.writeHead(200, { 'content-type': 'video/mp4' });
      const chunk = Buffer.concat([mp4({ payload: 0 }), Buffer.alloc(64 * 1024 - mp4({ payload: 0 }).length)]);
      res.on('close', () => (endless.closed = true));
      const pump = () => {
        while (!res.destroyed && endless.written < 1024 * 1024 * 1024) {
          endless.written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
      };
      return pump();
    }
    if (path === '/declared-huge') {
      res.writeHead(200, { 'content-type': 'application/pdf', 'content-length': 1024 * 1024 * 1024 });
      res.write('%PDF-1.4\n');
      return;
    }
    res.writeHead(404).end();
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    hits,
    endless,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
