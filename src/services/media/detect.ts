/**
 * What a file is, told from its first bytes. The Content-Type a client claims and the extension of
 * its name are what it says, not what it sent: they only choose between formats the bytes cannot
 * tell apart (CSV or plain text; a legacy Word, Excel or PowerPoint file).
 */
import { extname } from 'node:path';

export type Family = 'image' | 'video' | 'audio' | 'document';

export interface Detected {
  family: Family;
  mime: string;
  /** The usual extension, with its dot, for names of files that came without one. */
  ext: string;
  /** For messages: "a PNG image", "a QuickTime video". */
  label: string;
}

export interface Hints {
  fileName?: string | null | undefined;
  contentType?: string | null | undefined;
}

const at = (b: Buffer, offset: number, bytes: number[]): boolean => b.length >= offset + bytes.length && bytes.every((x, i) => b[offset + i] === x);
const ascii = (b: Buffer, offset: number, text: string): boolean => b.length >= offset + text.length && b.toString('latin1', offset, offset + text.length) === text;

const d = (family: Family, mime: string, ext: string, label: string): Detected => ({ family, mime, ext, label });

const JPEG = d('image', 'image/jpeg', '.jpg', 'a JPEG image');
const PNG = d('image', 'image/png', '.png', 'a PNG image');
const GIF = d('image', 'image/gif', '.gif', 'a GIF image');
const WEBP = d('image', 'image/webp', '.webp', 'a WebP image');
const TIFF = d('image', 'image/tiff', '.tif', 'a TIFF image');
const HEIC = d('image', 'image/heic', '.heic', 'a HEIC image');
const AVIF = d('image', 'image/avif', '.avif', 'an AVIF image');
const MP4 = d('video', 'video/mp4', '.mp4', 'an MP4 video');
const THREE_GP = d('video', 'video/3gpp', '.3gp', 'a 3GP video');
const THREE_G2 = d('video', 'video/3gpp2', '.3g2', 'a 3G2 video');
const QUICKTIME = d('video', 'video/quicktime', '.mov', 'a QuickTime video');
const WEBM = d('video', 'video/webm', '.webm', 'a WebM video');
const MATROSKA = d('video', 'video/x-matroska', '.mkv', 'a Matroska video');
const AVI = d('video', 'video/x-msvideo', '.avi', 'an AVI video');
const M4A = d('audio', 'audio/mp4', '.m4a', 'an M4A audio file');
const MP3 = d('audio', 'audio/mpeg', '.mp3', 'an MP3 audio file');
const OGG = d('audio', 'audio/ogg', '.ogg', 'an Ogg audio file');
const WAV = d('audio', 'audio/wav', '.wav', 'a WAV audio file');
const PDF = d('document', 'application/pdf', '.pdf', 'a PDF document');
const RTF = d('document', 'application/rtf', '.rtf', 'an RTF document');
const ZIP = d('document', 'application/zip', '.zip', 'a ZIP archive');
const GZIP = d('document', 'application/gzip', '.gz', 'a gzip archive');
const SEVEN_Z = d('document', 'application/x-7z-compressed', '.7z', 'a 7-Zip archive');
const RAR = d('document', 'application/vnd.rar', '.rar', 'a RAR archive');
const DOCX = d('document', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', '.docx', 'a Word document');
const XLSX = d('document', 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet', '.xlsx', 'an Excel workbook');
const PPTX = d('document', 'application/vnd.openxmlformats-officedocument.presentationml.presentation', '.pptx', 'a PowerPoint presentation');
const DOC = d('document', 'application/msword', '.doc', 'a Word document');
const XLS = d('document', 'application/vnd.ms-excel', '.xls', 'an Excel workbook');
const PPT = d('document', 'application/vnd.ms-powerpoint', '.ppt', 'a PowerPoint presentation');
const TEXT = d('document', 'text/plain', '.txt', 'a text file');
const CSV = d('document', 'text/csv', '.csv', 'a CSV file');

const ODF: Record<string, Detected> = {
  'application/vnd.oasis.opendocument.text': d('document', 'application/vnd.oasis.opendocument.text', '.odt', 'an OpenDocument text'),
  'application/vnd.oasis.opendocument.spreadsheet': d('document', 'application/vnd.oasis.opendocument.spreadsheet', '.ods', 'an OpenDocument spreadsheet'),
  'application/vnd.oasis.opendocument.presentation': d('document', 'application/vnd.oasis.opendocument.presentation', '.odp', 'an OpenDocument presentation'),
  'application/epub+zip': d('document', 'application/epub+zip', '.epub', 'an EPUB book'),
};

/** ISO base media files (MP4, 3GP, QuickTime, HEIF): the brands of their leading `ftyp` box. */
function isoBrands(b: Buffer): string[] | null {
  if (!ascii(b, 4, 'ftyp') || b.length < 16) return null;
  const size = Math.min(b.readUInt32BE(0), b.length);
  const brands = [b.toString('latin1', 8, 12)];
  for (let o = 16; o + 4 <= size; o += 4) brands.push(b.toString('latin1', o, o + 4));
  return brands;
}

function byBrand(brands: string[]): Detected {
  const major = brands[0]!;
  // The major brand says what the file mainly is; compatible brands decide only when it does not.
  for (const probe of [[major], brands]) {
    const is = (...xs: string[]) => probe.some((p) => xs.includes(p));
    if (is('avif', 'avis')) return AVIF;
    if (is('heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'mif1', 'msf1')) return HEIC;
    if (is('qt  ')) return QUICKTIME;
    if (probe.some((p) => p.startsWith('3g2'))) return THREE_G2;
    if (probe.some((p) => /^3g[pse]/.test(p))) return THREE_GP;
    if (is('M4A ', 'M4B ')) return M4A;
    if (is('isom', 'iso2', 'iso3', 'iso4', 'iso5', 'iso6', 'mp41', 'mp42', 'avc1', 'M4V ', 'M4VP', 'dash', 'mmp4', 'MSNV', 'f4v ')) return MP4;
  }
  // Another brand of the same container: the structure check that follows decides.
  return MP4;
}

function zipKind(b: Buffer): Detected {
  // OpenDocument and EPUB store an uncompressed "mimetype" entry first: its text is the type.
  if (ascii(b, 30, 'mimetype')) {
    const mime = /^[a-z0-9.+/-]+/.exec(b.toString('latin1', 38, 38 + 80))?.[0] ?? '';
    const odf = ODF[mime];
    if (odf) return odf;
  }
  // Office Open XML: the parts' folder names appear among the first entries' names.
  const head = b.toString('latin1');
  if (head.includes('word/')) return DOCX;
  if (head.includes('xl/')) return XLSX;
  if (head.includes('ppt/')) return PPTX;
  return ZIP;
}

function extOf(name: string | null | undefined): string {
  return name ? extname(name).toLowerCase() : '';
}

function mimeOf(contentType: string | null | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

/** A legacy Office file (OLE2 compound file): the bytes say only that; the name says which. */
function oleKind(h: Hints): Detected {
  const ext = extOf(h.fileName);
  const mime = mimeOf(h.contentType);
  if (ext === '.xls' || mime === 'application/vnd.ms-excel') return XLS;
  if (ext === '.ppt' || mime === 'application/vnd.ms-powerpoint') return PPT;
  return DOC;
}

/**
 * Text if the start holds no control bytes but tab, line breaks and form feed (or has a UTF-16
 * mark). The encoding is not checked: a Windows-1252 CSV from Excel is text too, and every binary
 * format has control bytes within its first few hundred.
 */
function isText(b: Buffer): boolean {
  if (at(b, 0, [0xff, 0xfe]) || at(b, 0, [0xfe, 0xff])) return true;
  for (const byte of b) {
    if ((byte < 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d && byte !== 0x0c) || byte === 0x7f) return false;
  }
  return true;
}

/** The type of a file from its first bytes. Null: not a format accepted for any media kind. */
export function detectType(head: Buffer, hints: Hints = {}): Detected | null {
  const b = head;
  if (at(b, 0, [0xff, 0xd8, 0xff])) return JPEG;
  if (at(b, 0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return PNG;
  if (ascii(b, 0, 'GIF87a') || ascii(b, 0, 'GIF89a')) return GIF;
  if (ascii(b, 0, 'RIFF') && ascii(b, 8, 'WEBP')) return WEBP;
  if (ascii(b, 0, 'RIFF') && ascii(b, 8, 'AVI ')) return AVI;
  if (ascii(b, 0, 'RIFF') && ascii(b, 8, 'WAVE')) return WAV;
  if (at(b, 0, [0x49, 0x49, 0x2a, 0x00]) || at(b, 0, [0x4d, 0x4d, 0x00, 0x2a])) return TIFF;
  const brands = isoBrands(b);
  if (brands) return byBrand(brands);
  // QuickTime files from old cameras may start with another atom than ftyp.
  if (b.length >= 8 && ['moov', 'mdat', 'wide', 'free'].includes(b.toString('latin1', 4, 8)) && !isText(b)) return QUICKTIME;
  if (at(b, 0, [0x1a, 0x45, 0xdf, 0xa3])) return b.subarray(0, 64).includes('webm') ? WEBM : MATROSKA;
  if (ascii(b, 0, '%PDF-')) return PDF;
  if (at(b, 0, [0x50, 0x4b, 0x03, 0x04])) return zipKind(b);
  if (at(b, 0, [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1])) return oleKind(hints);
  if (ascii(b, 0, '{\\rtf')) return RTF;
  if (at(b, 0, [0x1f, 0x8b])) return GZIP;
  if (at(b, 0, [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c])) return SEVEN_Z;
  if (ascii(b, 0, 'Rar!\x1a\x07')) return RAR;
  if (ascii(b, 0, 'ID3')) return MP3;
  if (ascii(b, 0, 'OggS')) return OGG;
  if (b.length > 0 && isText(b)) {
    const ext = extOf(hints.fileName);
    const mime = mimeOf(hints.contentType);
    return ext === '.csv' || mime === 'text/csv' || mime === 'application/csv' ? CSV : TEXT;
  }
  return null;
}

const ALL: Detected[] = [JPEG, PNG, GIF, WEBP, TIFF, HEIC, AVIF, MP4, THREE_GP, THREE_G2, QUICKTIME, WEBM, MATROSKA, AVI, M4A, MP3, OGG, WAV, PDF, RTF,
  ZIP, GZIP, SEVEN_Z, RAR, DOCX, XLSX, PPTX, DOC, XLS, PPT, TEXT, CSV, ...Object.values(ODF)];
const EXT_BY_MIME = new Map(ALL.map((t) => [t.mime, t.ext]));

/** The usual extension (with its dot) of a type detected here; empty for any other. */
export function extensionFor(mime: string): string {
  return EXT_BY_MIME.get(mime) ?? '';
}

/** The video containers WhatsApp plays. */
export function isWhatsAppVideo(t: Detected): boolean {
  return t.mime === 'video/mp4' || t.mime === 'video/3gpp' || t.mime === 'video/3gpp2';
}
