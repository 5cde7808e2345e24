/**
 * A video is not decoded here (that would need ffmpeg), but its container is read: the top-level
 * boxes must cover the file exactly (a truncated download does not), a `moov` box must describe
 * the tracks, and the codecs must be the ones WhatsApp plays: H.264 video, AAC audio if any.
 * An iPhone's default HEVC video would otherwise be accepted here and refused at every send.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { unreadable, unsupported, type MediaOrigin } from './errors.js';

/** The moov box holds only tables; a bigger one is not a video WhatsApp would take anyway. */
const MAX_MOOV_BYTES = 8 * 1024 * 1024;
const MAX_TOP_LEVEL_BOXES = 1000;

const VIDEO_CODECS = new Set(['avc1', 'avc3', 'hvc1', 'hev1', 'mp4v', 's263', 'av01', 'vp08', 'vp09', 'encv', 'dvh1', 'dvhe']);
const AUDIO_CODECS = new Set(['mp4a', 'samr', 'sawb', 'ac-3', 'ec-3', 'Opus', 'fLaC', 'alac', 'enca', '.mp3']);
const PLAYABLE_VIDEO = new Set(['avc1', 'avc3']);
const PLAYABLE_AUDIO = new Set(['mp4a']);

interface Box {
  type: string;
  start: number;
  headerSize: number;
  size: number;
}

async function topLevelBoxes(fh: FileHandle, fileSize: number): Promise<Box[] | null> {
  const boxes: Box[] = [];
  const head = Buffer.alloc(16);
  let offset = 0;
  while (offset < fileSize) {
    if (boxes.length >= MAX_TOP_LEVEL_BOXES || fileSize - offset < 8) return null;
    const { bytesRead } = await fh.read(head, 0, 16, offset);
    if (bytesRead < 8) return null;
    let size = head.readUInt32BE(0);
    let headerSize = 8;
    if (size === 1) {
      if (bytesRead < 16) return null;
      size = Number(head.readBigUInt64BE(8));
      headerSize = 16;
    } else if (size === 0) {
      size = fileSize - offset;
    }
    if (size < headerSize || offset + size > fileSize) return null;
    boxes.push({ type: head.toString('latin1', 4, 8), start: offset, headerSize, size });
    offset += size;
  }
  return boxes;
}

/** The sample entry types (codecs) of every track: moov/trak/mdia/minf/stbl/stsd. */
export function codecsOf(moov: Buffer): string[] {
  const out: string[] = [];
  const walk = (b: Buffer, path: string[]) => {
    let o = 0;
    while (o + 8 <= b.length) {
      const size = b.readUInt32BE(o);
      const type = b.toString('latin1', o + 4, o + 8);
      if (size < 8 || o + size > b.length) return;
      const body = b.subarray(o + 8, o + size);
      if (type === 'stsd' && body.length >= 8) {
        // A full box: version and flags, an entry count, then one box per sample entry.
        const entries = body.subarray(8);
        let e = 0;
        while (e + 8 <= entries.length) {
          const s = entries.readUInt32BE(e);
          out.push(entries.toString('latin1', e + 4, e + 8));
          if (s < 8) break;
          e += s;
        }
      } else if (['trak', 'mdia', 'minf', 'stbl'].includes(type) && path.length < 8) {
        walk(body, [...path, type]);
      }
      o += size;
    }
  };
  walk(moov, []);
  return out;
}

export async function checkVideo(file: string, fileSize: number, o: MediaOrigin): Promise<void> {
  const fh = await open(file, 'r');
  try {
    const boxes = await topLevelBoxes(fh, fileSize);
    if (!boxes || boxes[0]?.type !== 'ftyp') throw unreadable(o, 'the video file is incomplete or damaged (its boxes do not add up to the file)');
    const moov = boxes.find((b) => b.type === 'moov');
    if (!moov) throw unreadable(o, "the video file has no 'moov' box: it is incomplete, or still being recorded");
    if (moov.size > MAX_MOOV_BYTES) throw unsupported(o, 'the video has too many samples to be sent on WhatsApp');
    const buf = Buffer.alloc(moov.size - moov.headerSize);
    await fh.read(buf, 0, buf.length, moov.start + moov.headerSize);
    const codecs = codecsOf(buf);
    const video = codecs.filter((c) => VIDEO_CODECS.has(c));
    const audio = codecs.filter((c) => AUDIO_CODECS.has(c));
    if (video.length === 0) throw unsupported(o, 'the file has no video track WhatsApp can play (H.264)', codecs.join(',') || undefined);
    const badVideo = video.find((c) => !PLAYABLE_VIDEO.has(c));
    if (badVideo) {
      const name = badVideo.startsWith('hv') || badVideo.startsWith('he') ? 'H.265/HEVC' : badVideo;
      throw unsupported(o, `the video is encoded as ${name}; WhatsApp plays H.264 video only`, badVideo);
    }
    const badAudio = audio.find((c) => !PLAYABLE_AUDIO.has(c));
    if (badAudio) throw unsupported(o, `the audio is encoded as ${badAudio}; WhatsApp plays AAC audio only`, badAudio);
  } finally {
    await fh.close();
  }
}
