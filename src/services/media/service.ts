/**
 * Media for campaigns: images, videos and documents a tenant uploads or has fetched by URL. Every
 * file is checked once, here, when it arrives (type by its bytes, size, decodability; images
 * re-encoded to a small JPEG), so a campaign whose media is wrong fails to start with the reason
 * instead of failing each of its messages later. The transport reads the stored file by its key
 * (`pathOf`), never the URL again.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import type { Readable } from 'node:stream';
import type { Clock } from '../../engine/clock.js';
import type { Logger } from '../../logger.js';
import type { Db } from '../../store/db.js';
import {
  deleteMedia,
  getMedia,
  insertMedia,
  listMedia,
  lockStorageKey,
  mediaInUse,
  storageKeyInUse,
  type MediaKind,
  type MediaRow,
} from '../../store/sql/media.js';
import type { Actor } from '../actor.js';
import { AppError, conflict, forbidden, unprocessable } from '../errors.js';
import { detectType, extensionFor, isWhatsAppVideo, type Detected } from './detect.js';
import { fetchFailed, mediaNotFound, tooLarge, unreadable, unsupported, type MediaOrigin } from './errors.js';
import { openUrl } from './fetch.js';
import { reencodeImage } from './image.js';
import { FETCH_TIMEOUT_MS, maxBytesOf } from './limits.js';
import { mediaPath, MediaStore, type Received } from './store.js';
import { checkVideo } from './video.js';

export type { MediaKind } from '../../store/sql/media.js';

export interface MediaServiceOptions {
  /** Where the files are kept (created on first use). */
  dir: string;
  /** Let URLs reach private and loopback addresses: tests, or an install where every user is trusted. */
  allowPrivateAddresses?: boolean | undefined;
  fetchTimeoutMs?: number | undefined;
  log?: Logger | undefined;
}

/** A media row as the API shows it: without its tenant and storage key, the time as ISO text. */
export type MediaView = Omit<MediaRow, 'user_id' | 'storage_key' | 'created_at'> & { created_at: string };

/**
 * Media as a campaign carries it into the outbox, for the transport: the stored file is
 * `MediaService.pathOf(storageKey)` (or `mediaPath(dir, storageKey)`).
 */
export interface CampaignMedia {
  kind: MediaKind;
  mediaId: number;
  mimeType: string;
  fileName?: string;
  caption?: string;
  bytes: number;
  sourceUrl?: string;
  storageKey: string;
}

export interface CampaignMediaInput {
  type: MediaKind;
  url?: string | undefined;
  media_id?: number | undefined;
  filename?: string | undefined;
  caption?: string | undefined;
}

export interface UploadInput {
  body: NodeJS.ReadableStream | Buffer;
  /** What the client claims; only used to tell CSV from text and one legacy Office format from another. */
  contentType?: string | undefined;
  fileName?: string | undefined;
  /** Default: what the bytes are (an image, a video, or else a document). */
  kind?: MediaKind | undefined;
}

export interface MediaContent {
  stream: Readable;
  mimeType: string;
  fileName: string;
  bytes: number;
}

export function mediaView(r: MediaRow): MediaView {
  return {
    id: r.id,
    kind: r.kind,
    mime_type: r.mime_type,
    file_name: r.file_name,
    bytes: r.bytes,
    sha256: r.sha256,
    width: r.width,
    height: r.height,
    source_url: r.source_url,
    created_at: r.created_at.toISOString(),
  };
}

const article = (kind: MediaKind): string => (kind === 'image' ? 'an image' : `a ${kind}`);

/** A name as shown to recipients: no directories, no control characters, at most 255 characters. */
export function cleanFileName(name: string | null | undefined): string | null {
  if (!name) return null;
  // eslint-disable-next-line no-control-regex
  const base = name.split(/[/\\]/).pop()!.replace(/[\u0000-\u001f\u007f]/g, '').trim();
  return base === '' || base === '.' || base === '..' ? null : base.slice(0, 255);
}

/** The last path segment of a URL, as a file name. */
function fileNameOfUrl(url: string): string | null {
  try {
    const segment = new URL(url).pathname.split('/').pop() ?? '';
    return cleanFileName(decodeURIComponent(segment));
  } catch {
    return null;
  }
}

/** Images become JPEGs, so their name says .jpg; a name without an extension gets the type's. */
function storedFileName(name: string | null, kind: MediaKind, mime: string): string | null {
  if (name === null) return null;
  const ext = extname(name);
  if (kind === 'image') return `${(ext ? name.slice(0, -ext.length) : name).slice(0, 251)}.jpg`;
  return ext ? name : `${name.slice(0, 250)}${extensionFor(mime)}`;
}

/** The kind a file is taken as when none was asked for. */
function kindOfType(t: Detected | null): MediaKind {
  return t?.family === 'image' ? 'image' : t?.family === 'video' ? 'video' : 'document';
}

interface Incoming {
  origin: MediaOrigin;
  kind: MediaKind | undefined;
  fileName: string | null;
  contentType: string | undefined;
  sourceUrl: string | null;
}

export class MediaService {
  readonly dir: string;
  private readonly files: MediaStore;
  private readonly allowPrivateAddresses: boolean;
  private readonly fetchTimeoutMs: number;
  private readonly log: Logger | undefined;

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    opts: MediaServiceOptions,
  ) {
    this.dir = opts.dir;
    this.files = new MediaStore(opts.dir);
    this.allowPrivateAddresses = opts.allowPrivateAddresses ?? false;
    this.fetchTimeoutMs = opts.fetchTimeoutMs ?? FETCH_TIMEOUT_MS;
    this.log = opts.log;
  }

  /** The stored file of a storage key, for the transport. */
  pathOf(storageKey: string): string {
    return mediaPath(this.dir, storageKey);
  }

  /** Media can reach every campaign of the tenant: owners only, like campaigns. */
  private guard(actor: Actor): void {
    if (actor.teamMember) throw forbidden('TEAM_MEMBER_FORBIDDEN', 'team members cannot manage media');
  }

  async upload(actor: Actor, input: UploadInput): Promise<MediaView> {
    this.guard(actor);
    const origin: MediaOrigin = { via: 'upload' };
    const fileName = cleanFileName(input.fileName);
    const hints = { fileName, contentType: input.contentType };
    // Without a kind asked for, the first bytes decide which limit applies.
    let kind: MediaKind = input.kind ?? 'document';
    const received = await this.files.receive(input.body, {
      limitFor: (head) => {
        kind = input.kind ?? kindOfType(detectType(head, hints));
        return maxBytesOf(kind);
      },
      onTooLarge: (limit) => tooLarge(origin, kind, limit),
      onSourceError: (err) => new AppError('MEDIA_UPLOAD_FAILED', 400, 'the upload did not arrive whole', [{ path: 'body', message: String((err as Error)?.message ?? err) }]),
      destroySource: false,
    });
    const row = await this.accept(actor, received, { origin, kind: input.kind, fileName, contentType: input.contentType, sourceUrl: null });
    return mediaView(row);
  }

  async fromUrl(actor: Actor, url: string, kind: MediaKind, fileName?: string): Promise<MediaView> {
    this.guard(actor);
    return mediaView(await this.fetchRow(actor, url, kind, fileName));
  }

  private async fetchRow(actor: Actor, url: string, kind: MediaKind, fileName?: string): Promise<MediaRow> {
    const origin: MediaOrigin = { via: 'url', url };
    const maxBytes = maxBytesOf(kind);
    try {
      const fetched = await openUrl(url, { maxBytes, kind, timeoutMs: this.fetchTimeoutMs, allowPrivateAddresses: this.allowPrivateAddresses });
      let received: Received;
      try {
        received = await this.files.receive(fetched.body, {
          limitFor: () => maxBytes,
          onTooLarge: (limit) => tooLarge(origin, kind, limit),
          onSourceError: (err) => fetchFailed(url, 'CONNECTION_FAILED', `the download broke off (${(err as NodeJS.ErrnoException)?.code ?? String(err)})`),
          destroySource: true,
        });
      } finally {
        fetched.close();
      }
      const name = cleanFileName(fileName) ?? fileNameOfUrl(fetched.finalUrl);
      return await this.accept(actor, received, { origin, kind, fileName: name, contentType: fetched.contentType, sourceUrl: url });
    } catch (err) {
      if (err instanceof AppError) {
        // The host, not the URL: signed URLs carry credentials in their query.
        this.log?.info({ tenantId: actor.tenantId, host: hostOf(url), code: err.code, reason: err.details[0]?.code }, 'media by URL refused');
      }
      throw err;
    }
  }

  /** Checks what arrived, re-encodes an image, stores the file and records it. */
  private async accept(actor: Actor, received: Received, inc: Incoming): Promise<MediaRow> {
    const temps = [received.path];
    try {
      const { origin } = inc;
      if (received.bytes === 0) throw unreadable(origin, 'the file is empty');
      const t = detectType(received.head, { fileName: inc.fileName, contentType: inc.contentType });
      const kind = inc.kind ?? kindOfType(t);
      const found = t ? t.label : 'of a type not recognised';
      let file = received.path;
      let bytes = received.bytes;
      let sha256 = received.sha256;
      let mime: string;
      let width: number | null = null;
      let height: number | null = null;
      if (kind === 'image') {
        if (t?.family !== 'image') throw unsupported(origin, `expected an image (JPEG, PNG, GIF, WebP, HEIC, AVIF or TIFF) but the file is ${found}`, t?.mime);
        const out = await reencodeImage(await readFile(received.path), origin, t);
        file = await this.files.writeTemp(out.data);
        temps.push(file);
        bytes = out.data.length;
        sha256 = createHash('sha256').update(out.data).digest('hex');
        mime = 'image/jpeg';
        width = out.width;
        height = out.height;
      } else if (kind === 'video') {
        if (t?.family !== 'video') throw unsupported(origin, `expected an MP4 or 3GP video but the file is ${found}`, t?.mime);
        if (!isWhatsAppVideo(t)) throw unsupported(origin, `the file is ${t.label}; WhatsApp plays MP4 and 3GP videos only`, t.mime);
        await checkVideo(received.path, received.bytes, origin);
        mime = t.mime;
      } else {
        if (!t) {
          throw unsupported(origin, 'the file type is not recognised: documents may be PDF, Office, OpenDocument, RTF, text, CSV, an archive, or media files');
        }
        mime = t.mime;
      }
      const storageKey = sha256;
      return await this.db.transaction(async (tx) => {
        await lockStorageKey(tx, storageKey);
        const row = await insertMedia(
          tx,
          {
            tenantId: actor.tenantId,
            kind,
            mimeType: mime,
            fileName: storedFileName(inc.fileName, kind, mime),
            bytes,
            sha256,
            width,
            height,
            sourceUrl: inc.sourceUrl,
            storageKey,
          },
          new Date(this.clock.now()),
        );
        // Last, under the key's lock: a failed insert leaves no file, and a delete of the same
        // bytes waits for this row before it looks whether the file is still needed.
        await this.files.commit(file, storageKey);
        return row;
      });
    } finally {
      await Promise.all(temps.map((p) => this.files.discard(p)));
    }
  }

  async get(actor: Actor, id: number): Promise<MediaView> {
    this.guard(actor);
    return mediaView(await this.row(actor, id));
  }

  private async row(actor: Actor, id: number): Promise<MediaRow> {
    const row = await getMedia(this.db, actor.tenantId, id);
    if (!row) throw mediaNotFound();
    return row;
  }

  /** Newest first; `after` is the cursor (the last id of the previous page). */
  async list(actor: Actor, page: { after?: number | undefined; limit: number }): Promise<MediaView[]> {
    this.guard(actor);
    return (await listMedia(this.db, actor.tenantId, { before: page.after, limit: page.limit })).map(mediaView);
  }

  /**
   * Deletes the record, and the file once no record (of any tenant) names it. Refused while a
   * campaign that can still send, or a sequence step, uses it: their messages would fail.
   */
  async delete(actor: Actor, id: number): Promise<void> {
    this.guard(actor);
    await this.db.transaction(async (tx) => {
      const row = await getMedia(tx, actor.tenantId, id);
      if (!row) throw mediaNotFound();
      if (await mediaInUse(tx, actor.tenantId, id)) {
        throw conflict('MEDIA_IN_USE', 'a campaign or sequence step that can still send uses this media', [{ path: 'id', message: `media ${id} is in use` }]);
      }
      await lockStorageKey(tx, row.storage_key);
      await deleteMedia(tx, actor.tenantId, id);
      if (!(await storageKeyInUse(tx, row.storage_key))) await this.files.remove(row.storage_key);
    });
  }

  /** The stored bytes for downloading. */
  async open(actor: Actor, id: number): Promise<MediaContent> {
    this.guard(actor);
    const row = await this.row(actor, id);
    const path = this.pathOf(row.storage_key);
    const size = (await stat(path)).size;
    return {
      stream: this.files.open(row.storage_key),
      mimeType: row.mime_type,
      fileName: row.file_name ?? `media-${row.id}${extensionFor(row.mime_type)}`,
      bytes: size,
    };
  }

  /**
   * The media of a campaign as the outbox carries it: an uploaded file by `media_id`, or a URL
   * fetched, checked and stored now. Called when the campaign is saved or started, so a URL that
   * does not answer, or a file that is not what it claims, stops the campaign with the reason.
   */
  async prepareForCampaign(actor: Actor, input: CampaignMediaInput): Promise<CampaignMedia> {
    this.guard(actor);
    const hasUrl = input.url !== undefined;
    const hasId = input.media_id !== undefined;
    if (hasUrl === hasId) {
      throw new AppError('VALIDATION_FAILED', 400, 'give the media either a url or a media_id', [{ path: 'media', message: 'exactly one of url and media_id' }]);
    }
    let row: MediaRow;
    if (hasId) {
      const found = await getMedia(this.db, actor.tenantId, input.media_id!);
      if (!found) throw mediaNotFound(input.media_id);
      if (found.kind !== input.type) {
        throw unprocessable('MEDIA_KIND_MISMATCH', `media ${found.id} is ${article(found.kind)}, not ${article(input.type)}`, [
          { path: 'media.type', message: `media ${found.id} is ${article(found.kind)}`, kind: found.kind },
        ]);
      }
      row = found;
    } else {
      row = await this.fetchRow(actor, input.url!, input.type, input.filename);
    }
    // A name given with the campaign wins, but an image was re-encoded: it is a JPEG whatever it was.
    const given = cleanFileName(input.filename);
    const fileName = given !== null && row.mime_type === 'image/jpeg' ? `${given.replace(/\.[^.]*$/, '') || 'image'}.jpg` : (given ?? row.file_name);
    return {
      kind: row.kind,
      mediaId: row.id,
      mimeType: row.mime_type,
      ...(fileName !== null ? { fileName } : {}),
      ...(input.caption !== undefined ? { caption: input.caption } : {}),
      bytes: row.bytes,
      ...(row.source_url !== null ? { sourceUrl: row.source_url } : {}),
      storageKey: row.storage_key,
    };
  }
}

function hostOf(url: string): string | null {
  try {
    return new URL(url).host;
  } catch {
    return null;
  }
}
