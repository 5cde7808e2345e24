/**
 * The one interface every way of reaching WhatsApp implements: the simulator now, linked devices
 * (Baileys) and the Cloud API later. The engine knows nothing else about a transport.
 */

export interface DeviceRef {
  id: number;
  userId: number;
  phone: string | null;
}

export interface OutboundMessage {
  /** The outbox id: a transport may use it as its own message id, and reports receipts with it. */
  id: number;
  deviceId: number;
  to: string;
  body: string;
  media: MediaRef | null;
  /** "campaign:12" or "sequence:3/step:2": for logs and the simulator's record. */
  origin: string;
  attempt: number;
}

/**
 * Media as a message carries it. A scheduled campaign's media is a stored, already re-encoded file
 * (mediaId, storageKey: read it with the media store's path); `url` is where it came from, and the
 * only reference for media written by hand (simulations, tests).
 */
export interface MediaRef {
  kind: 'image' | 'video' | 'document';
  url?: string;
  mediaId?: number;
  storageKey?: string;
  mimeType?: string;
  bytes?: number;
  fileName?: string;
  caption?: string;
}

export type SendResult =
  | { ok: true; transportId: string }
  | {
      ok: false;
      /** A stable code, e.g. NETWORK, NOT_ON_WHATSAPP, RESTRICTED. */
      code: string;
      message: string;
      /** Worth another attempt later (network trouble), as opposed to never (bad number). */
      transient: boolean;
      /** The device is restricted until this time; the engine pauses it and never retries this send. */
      restrictedUntil?: number;
    };

export type DeviceStatus = 'connecting' | 'online' | 'offline' | 'logged_out' | 'replaced';

export type TransportEvent =
  | { type: 'status'; deviceId: number; status: DeviceStatus; at: number; reason?: string }
  | { type: 'receipt'; deviceId: number; messageId: number; status: 'delivered' | 'read'; at: number }
  | { type: 'incoming'; deviceId: number; from: string; text: string; at: number }
  | { type: 'restricted'; deviceId: number; until: number; reason: string; at: number }
  /** How a link started with `link()` goes; the engine ignores it, the device-link runner records it. */
  | { type: 'link'; deviceId: number; at: number; progress: LinkProgress };

/** How to pair a device with a WhatsApp account: a QR code to scan, or a code typed on the phone. */
export type LinkRequest = { method: 'qr' } | { method: 'pairing_code'; phone: string };

/**
 * The steps of a link, as a transport reports them. `expiresAt` is when the QR code or pairing code
 * shown stops working (a QR is replaced by a new one before then, until the transport gives up).
 */
export type LinkProgress =
  | { state: 'waiting_for_scan'; qr: string; expiresAt: number }
  | { state: 'waiting_for_code'; pairingCode: string; expiresAt: number }
  | { state: 'linked'; phone: string | null }
  | { state: 'failed'; code: string; message: string }
  | { state: 'expired' };

/** What a transport can prove about a send the engine lost track of (a crash mid-send). */
export type SendProof = { status: 'sent'; at: number } | { status: 'not_sent' };

export interface Transport {
  readonly kind: string;
  connect(device: DeviceRef): Promise<void>;
  disconnect(deviceId: number): Promise<void>;
  send(message: OutboundMessage): Promise<SendResult>;
  /**
   * For messages left in flight by a dead process: which of them the transport can prove were
   * sent or not. Ids it cannot speak for are left out, and the engine marks them `unknown`.
   */
  proveSends?(messageIds: readonly number[]): Promise<Map<number, SendProof>>;
  onEvent(listener: (event: TransportEvent) => void): () => void;

  /*
   * Linking, for transports whose devices are paired with a phone. All optional: the engine never
   * calls them, and a transport without them simply cannot be linked through the API.
   */

  /** Starts (or restarts) linking the device; progress comes as `link` events. */
  link?(device: DeviceRef, request: LinkRequest): Promise<void>;
  /** Abandons a link in progress; no further `link` events for it. */
  cancelLink?(deviceId: number): Promise<void>;
  /** Unlinks the device from its WhatsApp account and forgets its credentials. */
  logout?(deviceId: number): Promise<void>;
}
