/**
 * A device's link attempt as the API and the live stream show it (the LinkState of the API), and
 * its publication as a `device.link` live event. The QR code travels as its raw text (what
 * WhatsApp scans) and as an SVG document rendered with the `qrcode` package; nothing else of the
 * transport's (no credentials, no keys) is ever in it.
 */
import QRCode from 'qrcode';
import type { Db } from '../../store/db.js';
import type { LinkRow, LinkStateName } from '../../store/sql/device-links.js';
import { LivePayloadTooLarge, publishLive } from '../live/channel.js';

export interface LinkStateView {
  device_id: number;
  state: LinkStateName;
  method: 'qr' | 'pairing_code' | null;
  qr: string | null;
  qr_svg: string | null;
  pairing_code: string | null;
  expires_at: string | null;
  error: { code: string; message: string } | null;
  updated_at: string;
}

export async function qrSvg(text: string): Promise<string> {
  return QRCode.toString(text, { type: 'svg', margin: 2 });
}

/** The view of a device's link; a device never asked to link is `idle` since it was created. */
export async function linkStateView(row: LinkRow | null, deviceId: number, since: Date): Promise<LinkStateView> {
  if (!row) {
    return { device_id: deviceId, state: 'idle', method: null, qr: null, qr_svg: null, pairing_code: null, expires_at: null, error: null, updated_at: since.toISOString() };
  }
  return {
    device_id: row.device_id,
    state: row.state,
    method: row.method,
    qr: row.qr,
    qr_svg: row.qr ? await qrSvg(row.qr) : null,
    pairing_code: row.pairing_code,
    expires_at: row.expires_at ? row.expires_at.toISOString() : null,
    error: row.error_code ? { code: row.error_code, message: row.error_message ?? '' } : null,
    updated_at: row.updated_at.toISOString(),
  };
}

/**
 * Tells the device's owner (and the team members assigned to it) how its link stands. A QR code
 * whose SVG would not fit a notification goes without the SVG; the viewer asks GET .../link.
 */
export async function publishLinkState(db: Pick<Db, 'notify'>, row: LinkRow, at: number): Promise<LinkStateView> {
  const view = await linkStateView(row, row.device_id, row.updated_at);
  const event = { tenantId: row.user_id, deviceId: row.device_id, type: 'device.link', at, data: { ...view } };
  try {
    await publishLive(db, event);
  } catch (err) {
    if (!(err instanceof LivePayloadTooLarge)) throw err;
    await publishLive(db, { ...event, data: { ...view, qr_svg: null } });
  }
  return view;
}
