/**
 * Every image becomes a JPEG of at most IMAGE_OUTPUT_MAX_BYTES, the same for every recipient, so
 * a campaign's image is checked and paid for once rather than at each of its sends.
 *
 * The pixels are decoded once: turned upright by their EXIF orientation, transparency flattened
 * onto white (JPEG has none; black would be the default), reduced to IMAGE_MAX_SIDE on the long
 * side, never enlarged. Then the quality is lowered step by step; when even the lowest step is too
 * big, the image is made smaller at a fixed quality, sized from the last result, until it fits
 * (and is not needlessly far under the limit). The aspect ratio is kept throughout; metadata (EXIF, GPS, ICC) is not written out.
 * An animated GIF or WebP gives its first frame.
 */
import type { Metadata, Sharp, SharpOptions } from 'sharp';

type SharpFactory = (input?: Buffer, options?: SharpOptions) => Sharp;
let loaded: Promise<SharpFactory> | undefined;
/**
 * The image library is loaded on first use: it holds ~28 MB resident once loaded (measured), which
 * a server that never receives an image, or a CSV import, should not pay.
 */
function sharpLib(): Promise<SharpFactory> {
  loaded ??= import('sharp').then((m) => m.default as unknown as SharpFactory);
  return loaded;
}
import type { Detected } from './detect.js';
import { tooLarge, unreadable, unsupported, type MediaOrigin } from './errors.js';
import {
  IMAGE_CONCURRENCY,
  IMAGE_DOWNSCALE_QUALITY,
  IMAGE_MAX_INPUT_PIXELS,
  IMAGE_MAX_SIDE,
  IMAGE_MIN_SIDE,
  IMAGE_OUTPUT_MAX_BYTES,
  IMAGE_QUALITIES,
} from './limits.js';

export interface EncodedImage {
  data: Buffer;
  width: number;
  height: number;
  quality: number;
}

export interface ReencodeOptions {
  maxBytes?: number;
  maxSide?: number;
}

/** Roughly how much one quality step shrinks a JPEG; used to skip steps that cannot reach the limit. */
const STEP_RATIO = 0.8;
/** How many smaller sizes are tried before giving up. */
const DOWNSCALE_ATTEMPTS = 8;
/** A downscaled JPEG this close to the limit is kept; closer would cost more encodes than it gains. */
const DOWNSCALE_CLOSE_ENOUGH = 0.8;
/** Seconds libvips may spend on one operation before it is abandoned. */
const SHARP_TIMEOUT_S = 60;

interface Pixels {
  data: Buffer;
  width: number;
  height: number;
  channels: 1 | 2 | 3 | 4;
}

function decodeError(o: MediaOrigin, t: Detected, err: unknown): Error {
  const message = err instanceof Error ? err.message : String(err);
  if (/pixel limit/i.test(message)) return tooLarge(o, 'image', IMAGE_MAX_INPUT_PIXELS, `the image has more than ${IMAGE_MAX_INPUT_PIXELS} pixels`);
  // The prebuilt image library reads AVIF but not the HEVC inside most HEIC photos.
  if (t.mime === 'image/heic') return unsupported(o, 'HEIC images cannot be decoded here: send it as JPEG or PNG', t.mime);
  if (/unsupported image format/i.test(message)) return unsupported(o, `${t.label} that cannot be decoded`, t.mime);
  return unreadable(o, `the image cannot be decoded (${message.split('\n')[0]!.slice(0, 200)})`);
}

async function decode(input: Buffer, o: MediaOrigin, t: Detected, maxSide: number): Promise<Pixels> {
  const sharp = await sharpLib();
  let meta: Metadata;
  try {
    meta = await sharp(input, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw decodeError(o, t, err);
  }
  const frameHeight = meta.pageHeight ?? meta.height;
  // Refused from the header: a decompression bomb is a small file declaring a huge canvas.
  if (meta.width * frameHeight > IMAGE_MAX_INPUT_PIXELS) {
    throw tooLarge(o, 'image', IMAGE_MAX_INPUT_PIXELS, `the image is ${meta.width} x ${frameHeight} pixels; at most ${IMAGE_MAX_INPUT_PIXELS} pixels are accepted`);
  }
  try {
    const { data, info } = await sharp(input, { limitInputPixels: IMAGE_MAX_INPUT_PIXELS, failOn: 'error', autoOrient: true })
      .timeout({ seconds: SHARP_TIMEOUT_S })
      .flatten({ background: '#ffffff' })
      .resize({ width: maxSide, height: maxSide, fit: 'inside', withoutEnlargement: true })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    return { data, width: info.width, height: info.height, channels: info.channels };
  } catch (err) {
    throw decodeError(o, t, err);
  }
}

async function encode(p: Pixels, quality: number, size?: { width: number; height: number }): Promise<Buffer> {
  const sharp = await sharpLib();
  let img = sharp(p.data, { raw: { width: p.width, height: p.height, channels: p.channels } }).timeout({ seconds: SHARP_TIMEOUT_S });
  if (size) img = img.resize({ width: size.width, height: size.height, fit: 'fill' });
  return img.jpeg({ quality, mozjpeg: true }).toBuffer();
}

const clampScale = (s: number): number => Math.min(0.9, Math.max(0.05, s));

/** The size `scale` gives, keeping the ratio of the decoded image (within a pixel). */
function scaled(p: Pixels, scale: number): { width: number; height: number } {
  return { width: Math.max(1, Math.round(p.width * scale)), height: Math.max(1, Math.round(p.height * scale)) };
}

let running = 0;
const waiting: (() => void)[] = [];

/** Runs `fn` when fewer than IMAGE_CONCURRENCY images are being re-encoded. */
async function inTurn<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= IMAGE_CONCURRENCY) await new Promise<void>((resolve) => waiting.push(resolve));
  else running++;
  try {
    return await fn();
  } finally {
    // The slot passes straight to the next waiter, so `running` never drops and rises again.
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}

export function reencodeImage(input: Buffer, o: MediaOrigin, t: Detected, opts: ReencodeOptions = {}): Promise<EncodedImage> {
  return inTurn(() => reencode(input, o, t, opts));
}

async function reencode(input: Buffer, o: MediaOrigin, t: Detected, opts: ReencodeOptions): Promise<EncodedImage> {
  const maxBytes = opts.maxBytes ?? IMAGE_OUTPUT_MAX_BYTES;
  const p = await decode(input, o, t, opts.maxSide ?? IMAGE_MAX_SIDE);
  let last = 0;
  for (let i = 0; i < IMAGE_QUALITIES.length; i++) {
    const quality = IMAGE_QUALITIES[i]!;
    const data = await encode(p, quality);
    if (data.length <= maxBytes) return { data, width: p.width, height: p.height, quality };
    last = data.length;
    // Each step takes about a fifth off: when the steps left cannot reach the limit, go smaller now.
    if (last * STEP_RATIO ** (IMAGE_QUALITIES.length - 1 - i) > maxBytes) break;
  }
  // Bytes go roughly with the pixel count, so with the square of the scale: each try aims just
  // under the limit from the last size, between the largest scale known to fit and the smallest
  // known not to. A result within DOWNSCALE_CLOSE_ENOUGH of the limit ends the search.
  let fits = 0;
  let tooBig = 1;
  let best: EncodedImage | null = null;
  let scale = clampScale(Math.sqrt(maxBytes / last) * 0.92);
  for (let attempt = 0; attempt < DOWNSCALE_ATTEMPTS; attempt++) {
    const size = scaled(p, scale);
    if (Math.max(size.width, size.height) < IMAGE_MIN_SIDE) break;
    const data = await encode(p, IMAGE_DOWNSCALE_QUALITY, size);
    if (data.length <= maxBytes) {
      best = { data, ...size, quality: IMAGE_DOWNSCALE_QUALITY };
      fits = scale;
      if (data.length >= maxBytes * DOWNSCALE_CLOSE_ENOUGH) break;
    } else {
      tooBig = scale;
    }
    let next = scale * Math.sqrt((maxBytes * 0.95) / data.length);
    if (next <= fits || next >= tooBig) next = (fits + tooBig) / 2;
    if (tooBig - fits < 0.01) break;
    scale = next;
  }
  if (best) return best;
  throw tooLarge(o, 'image', maxBytes, `the image does not fit in ${maxBytes} bytes even when made much smaller`);
}
