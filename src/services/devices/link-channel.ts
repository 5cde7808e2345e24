/**
 * How a link request made through the API (in any process) reaches the transport of the process
 * holding the device's lease: the request is written to the database first (device_links), then
 * announced here; the holder's link runner reads the row and drives its transport. A process that
 * takes a device over later finds the request in the table.
 */
export const LINKS_CHANNEL = 'fleetcast_links';

export type LinkCommand =
  | { device: number; action: 'link' }
  | { device: number; action: 'cancel' }
  | { device: number; action: 'logout' }
  /** The device's credentials changed (Cloud API): connect it again with them. */
  | { device: number; action: 'refresh' }
  | { device: number; action: 'scan'; phone: string };

export function encodeLinkCommand(c: LinkCommand): string {
  return JSON.stringify(c);
}

/** The command a payload carries, or null for one that is not a command (it is ignored). */
export function decodeLinkCommand(payload: string): LinkCommand | null {
  try {
    const v = JSON.parse(payload) as { device?: unknown; action?: unknown; phone?: unknown };
    if (typeof v.device !== 'number') return null;
    if (v.action === 'link' || v.action === 'cancel' || v.action === 'logout' || v.action === 'refresh') return { device: v.device, action: v.action };
    if (v.action === 'scan' && typeof v.phone === 'string') return { device: v.device, action: 'scan', phone: v.phone };
  } catch {
    // not ours
  }
  return null;
}
