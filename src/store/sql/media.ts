/**
 * Media rows: the files a tenant uploaded or a campaign fetched, already checked and re-encoded.
 * The bytes live on disk under `storage_key` (their sha256); the row is the tenant's claim on them.
 * Two rows, of one tenant or of two, may share a key: the file is kept while any row names it.
 */
import type { Queryable } from '../db.js';

export type MediaKind = 'image' | 'video' | 'document';

export interface MediaRow {
  id: number;
  user_id: number;
  kind: MediaKind;
  mime_type: string;
  file_name: string | null;
  bytes: number;
  sha256: string;
  width: number | null;
  height: number | null;
  source_url: string | null;
  storage_key: string;
  created_at: Date;
}

const columns = `m.id, m.user_id, m.kind, m.mime_type, m.file_name, m.bytes, m.sha256, m.width, m.height, m.source_url,
  m.storage_key, m.created_at`;

export interface NewMedia {
  tenantId: number;
  kind: MediaKind;
  mimeType: string;
  fileName: string | null;
  bytes: number;
  sha256: string;
  width: number | null;
  height: number | null;
  sourceUrl: string | null;
  storageKey: string;
}

export async function insertMedia(db: Queryable, m: NewMedia, now: Date): Promise<MediaRow> {
  const res = await db.query<MediaRow>(
    `insert into media as m (user_id, kind, mime_type, file_name, bytes, sha256, width, height, source_url, storage_key, created_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
     returning ${columns}`,
    [m.tenantId, m.kind, m.mimeType, m.fileName, m.bytes, m.sha256, m.width, m.height, m.sourceUrl, m.storageKey, now],
  );
  return res.rows[0]!;
}

/** One media row of this tenant; another tenant's id reads as missing. */
export async function getMedia(db: Queryable, tenantId: number, id: number): Promise<MediaRow | null> {
  const res = await db.query<MediaRow>(`select ${columns} from media m where m.id = $1 and m.user_id = $2`, [id, tenantId]);
  return res.rows[0] ?? null;
}

/** Newest first; `before` is the keyset cursor (the last id of the previous page). */
export async function listMedia(db: Queryable, tenantId: number, page: { before?: number | undefined; limit: number }): Promise<MediaRow[]> {
  const res = await db.query<MediaRow>(
    `select ${columns} from media m
      where m.user_id = $1 and ($2::bigint is null or m.id < $2)
      order by m.id desc limit $3`,
    [tenantId, page.before ?? null, page.limit],
  );
  return res.rows;
}

/** Deletes the tenant's row; returns it (for its storage key), or null when there was none. */
export async function deleteMedia(db: Queryable, tenantId: number, id: number): Promise<MediaRow | null> {
  const res = await db.query<MediaRow>(`delete from media m where m.id = $1 and m.user_id = $2 returning ${columns}`, [id, tenantId]);
  return res.rows[0] ?? null;
}

/** Whether any row, of any tenant, still names this file. */
export async function storageKeyInUse(db: Queryable, storageKey: string): Promise<boolean> {
  const res = await db.query(`select 1 from media where storage_key = $1 limit 1`, [storageKey]);
  return res.rows.length > 0;
}

/**
 * Serialises the writers and deleters of one stored file until the transaction ends, so a delete
 * that finds no other row cannot remove a file an upload of the same bytes is committing.
 */
export async function lockStorageKey(db: Queryable, storageKey: string): Promise<void> {
  await db.query(`select pg_advisory_xact_lock(7302, hashtext($1))`, [storageKey]);
}

/**
 * Whether a campaign that can still send, or a sequence step, refers to this media. Campaigns and
 * steps carry it as JSON (`mediaId`, as prepared for the outbox; `media_id`, as a request gives
 * it). Finished campaigns do not count: nothing of theirs waits to be sent.
 */
export async function mediaInUse(db: Queryable, tenantId: number, id: number): Promise<boolean> {
  const res = await db.query(
    `select 1 from campaigns c
      where c.user_id = $1 and c.status in ('draft', 'scheduled', 'running', 'paused')
        and (c.media->>'mediaId' = $2::text or c.media->>'media_id' = $2::text)
     union all
     select 1 from sequence_steps st join sequences q on q.id = st.sequence_id
      where q.user_id = $1 and (st.media->>'mediaId' = $2::text or st.media->>'media_id' = $2::text)
     limit 1`,
    [tenantId, id],
  );
  return res.rows.length > 0;
}
