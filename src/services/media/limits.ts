/**
 * Every limit on campaign media, in one place (docs/media.md repeats them). Videos follow
 * WhatsApp's own limits: a bigger or other video would be refused at every send instead of once.
 */
import type { MediaKind } from '../../store/sql/media.js';

const MB = 1024 * 1024;

/** An image as received, before re-encoding. */
export const IMAGE_INPUT_MAX_BYTES = 16 * MB;
/** The JPEG every image becomes. */
export const IMAGE_OUTPUT_MAX_BYTES = 350 * 1024;
/**
 * Pixels an image may declare (about 8192 x 8192). A small PNG can declare a gigantic canvas; it is
 * refused from its header, before any pixel is decoded (sharp's limitInputPixels).
 */
export const IMAGE_MAX_INPUT_PIXELS = 8192 * 8192;
/**
 * The long side an image is first reduced to. At 350 KB there is about one bit per pixel for a
 * 2048 x 1536 photo; more pixels would only be bought with a worse quality, and decoding a 48 MP
 * photo into memory for nothing is what this spares.
 */
export const IMAGE_MAX_SIDE = 2048;
/** JPEG qualities tried in turn before the image is made smaller. */
export const IMAGE_QUALITIES = [82, 74, 66, 58, 50] as const;
/** The quality a downscaled image is encoded with. */
export const IMAGE_DOWNSCALE_QUALITY = 72;
/**
 * Images re-encoded at once in this process; more wait their turn. Turning a large photo upright
 * holds all its pixels (up to a few hundred MB), so a burst of uploads must not do it all at once.
 */
export const IMAGE_CONCURRENCY = 2;
/** Below this long side an image is not worth sending: give up (practically never reached). */
export const IMAGE_MIN_SIDE = 64;

export const VIDEO_MAX_BYTES = 16 * MB;
export const DOCUMENT_MAX_BYTES = 100 * MB;

/** The most a single fetch may take, redirects and body included, unless the service says otherwise. */
export const FETCH_TIMEOUT_MS = 30_000;
export const FETCH_MAX_REDIRECTS = 5;

/** How much of a file's start is kept to tell its type. */
export const SNIFF_BYTES = 64 * 1024;

export function maxBytesOf(kind: MediaKind): number {
  return kind === 'image' ? IMAGE_INPUT_MAX_BYTES : kind === 'video' ? VIDEO_MAX_BYTES : DOCUMENT_MAX_BYTES;
}

export function sizeText(bytes: number): string {
  if (bytes >= MB) return `${Math.round((bytes / MB) * 10) / 10} MB`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${bytes} bytes`;
}
