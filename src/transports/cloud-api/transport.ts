/**
 * The WhatsApp Business Cloud API: a device is a business phone number (its phone-number id and an
 * access token, stored sealed in cloud_api_numbers). There is no connection to keep: a device is
 * online as soon as it has credentials, and every send is one HTTPS call to the Graph API.
 *
 * Messages: text; image, video and document (by the media's URL when it has one, else uploaded to
 * the number's media first); and templates, written in the message body as
 *
 *     template: <name> <language>
 *     <parameter 1>
 *     <parameter 2>
 *
 * (each following line is one body parameter, personalised like any body). Every message carries
 * `biz_opaque_callback_data` = `fleetcast:<outbox id>`, which the status webhook echoes, so a
 * status maps back to the outbox without a lookup.
 *
 * Errors, by Graph API code: 130429 (throughput) -> the device backs off for a while, growing with
 * each one, and the message is retried; 131056 (pair rate limit) -> only this message is retried,
 * later; 131047 (outside the 24-hour window) -> failed, with the reason; 368 and 131048 (policy,
 * spam) -> the device is paused and this message never retried; 131026 -> not on WhatsApp
 * (skipped); 5xx, a timeout, a network error or an answer that is not the Graph API's JSON ->
 * retried; anything else -> failed with the Graph API's code and message.
 */
import { readFile } from 'node:fs/promises';
import type { Clock } from '../../engine/clock.js';
import type { Db } from '../../store/db.js';
import { getCloudNumber } from '../../store/sql/cloud-api.js';
import type { SecretBox } from '../../services/secrets/secret-box.js';
import type { DeviceRef, MediaRef, OutboundMessage, SendResult, Transport, TransportEvent } from '../transport.js';

export interface CloudCredentials {
  accessToken: string;
  appSecret: string | null;
  verifyToken: string | null;
}

export function credentialsContext(deviceId: number): string {
  return `cloud:${deviceId}`;
}

export const CALLBACK_PREFIX = 'fleetcast:';

export interface CloudApiOptions {
  db: Db;
  clock: Clock;
  box: SecretBox;
  /** The Graph API, e.g. https://graph.facebook.com/v21.0 (tests: a local server). */
  baseUrl: string;
  /** How long one Graph API call may take. */
  timeoutMs?: number;
  /** First throughput back-off (doubles per 130429 in a row, up to 15 minutes). */
  throughputBackoffMs?: number;
  /** How long a device is paused for 368 and 131048, which say no end. */
  policyPauseMs?: number;
  mediaPath?: (storageKey: string) => string;
}

interface Number {
  ref: DeviceRef;
  phoneNumberId: string;
  creds: CloudCredentials;
  online: boolean;
  throttled: number;
}

interface GraphError {
  status: number;
  code: number | null;
  message: string;
}

/** A template message as a body spells it, or null for an ordinary body. */
export function parseTemplate(body: string): { name: string; language: string; parameters: string[] } | null {
  const lines = body.split(/\r?\n/);
  const m = /^template:\s*([a-z0-9_]+)\s+([A-Za-z_]{2,10})\s*$/.exec(lines[0] ?? '');
  if (!m) return null;
  return { name: m[1]!, language: m[2]!, parameters: lines.slice(1).map((l) => l.trim()).filter((l) => l !== '') };
}

export class CloudApiTransport implements Transport {
  readonly kind = 'cloud_api';
  private readonly numbers = new Map<number, Number>();
  private readonly listeners = new Set<(e: TransportEvent) => void>();

  constructor(private readonly o: CloudApiOptions) {}

  onEvent(listener: (event: TransportEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(e: TransportEvent): void {
    for (const l of this.listeners) l(e);
  }

  /** Online once it has credentials; called again (by the link runner) when they change. */
  async connect(ref: DeviceRef): Promise<void> {
    const row = await getCloudNumber(this.o.db, ref.id);
    if (!row) {
      this.numbers.delete(ref.id);
      return;
    }
    const creds = this.o.box.openJson<CloudCredentials>(row.secrets, credentialsContext(ref.id));
    const prev = this.numbers.get(ref.id);
    this.numbers.set(ref.id, { ref, phoneNumberId: row.phone_number_id, creds, online: true, throttled: prev?.throttled ?? 0 });
    this.emit({ type: 'status', deviceId: ref.id, status: 'online', at: this.o.clock.now() });
  }

  async disconnect(deviceId: number): Promise<void> {
    const n = this.numbers.get(deviceId);
    if (!n) return;
    this.numbers.delete(deviceId);
    this.emit({ type: 'status', deviceId, status: 'offline', at: this.o.clock.now() });
  }

  /** Forgets the number's credentials (they are wiped from the database by the caller). */
  async logout(deviceId: number): Promise<void> {
    if (!this.numbers.delete(deviceId)) return;
    this.emit({ type: 'status', deviceId, status: 'logged_out', at: this.o.clock.now() });
  }

  private async call(n: Number, path: string, init: { body: string | FormData; json: boolean }): Promise<{ ok: true; value: Record<string, unknown> } | { ok: false; error: GraphError }> {
    let res: Response;
    try {
      res = await fetch(`${this.o.baseUrl}/${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${n.creds.accessToken}`, ...(init.json ? { 'content-type': 'application/json' } : {}) },
        body: init.body,
        signal: AbortSignal.timeout(this.o.timeoutMs ?? 15_000),
      });
    } catch (err) {
      const timeout = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
      return { ok: false, error: { status: 0, code: null, message: timeout ? 'the Graph API did not answer in time' : `network error: ${(err as Error).message}` } };
    }
    let value: unknown;
    try {
      value = await res.json();
    } catch {
      return { ok: false, error: { status: res.status, code: null, message: `the Graph API answered ${res.status} with a body that is not JSON` } };
    }
    if (typeof value !== 'object' || value === null) return { ok: false, error: { status: res.status, code: null, message: 'the Graph API answered with unexpected JSON' } };
    const v = value as { error?: { code?: unknown; message?: unknown; error_data?: { details?: unknown } } };
    if (!res.ok || v.error) {
      const code = typeof v.error?.code === 'number' ? v.error.code : null;
      const details = typeof v.error?.error_data?.details === 'string' ? `: ${v.error.error_data.details}` : '';
      return { ok: false, error: { status: res.status, code, message: `${typeof v.error?.message === 'string' ? v.error.message : `HTTP ${res.status}`}${details}` } };
    }
    return { ok: true, value: value as Record<string, unknown> };
  }

  private async mediaObject(n: Number, m: MediaRef): Promise<{ link: string } | { id: string } | GraphError> {
    if (m.url) return { link: m.url };
    if (!m.storageKey || !this.o.mediaPath) return { status: 0, code: null, message: 'the media has neither a URL nor a stored file' };
    const form = new FormData();
    form.append('messaging_product', 'whatsapp');
    form.append('type', m.mimeType ?? 'application/octet-stream');
    form.append('file', new Blob([await readFile(this.o.mediaPath(m.storageKey))], { type: m.mimeType ?? 'application/octet-stream' }), m.fileName ?? 'file');
    const r = await this.call(n, `${n.phoneNumberId}/media`, { body: form, json: false });
    if (!r.ok) return r.error;
    return typeof r.value.id === 'string' ? { id: r.value.id } : { status: 200, code: null, message: 'the media upload answered without an id' };
  }

  private async payload(n: Number, msg: OutboundMessage): Promise<Record<string, unknown> | GraphError> {
    const base = { messaging_product: 'whatsapp', recipient_type: 'individual', to: msg.to.replace(/^\+/, ''), biz_opaque_callback_data: `${CALLBACK_PREFIX}${msg.id}` };
    const t = parseTemplate(msg.body);
    if (t) {
      return {
        ...base,
        type: 'template',
        template: {
          name: t.name,
          language: { code: t.language },
          ...(t.parameters.length > 0 ? { components: [{ type: 'body', parameters: t.parameters.map((text) => ({ type: 'text', text })) }] } : {}),
        },
      };
    }
    if (!msg.media) return { ...base, type: 'text', text: { body: msg.body, preview_url: false } };
    const media = await this.mediaObject(n, msg.media);
    if ('status' in media) return media;
    const caption = msg.body || msg.media.caption;
    const kind = msg.media.kind;
    return {
      ...base,
      type: kind,
      [kind]: { ...media, ...(caption ? { caption } : {}), ...(kind === 'document' ? { filename: msg.media.fileName ?? 'document' } : {}) },
    };
  }

  async send(msg: OutboundMessage): Promise<SendResult> {
    const n = this.numbers.get(msg.deviceId);
    if (!n?.online) return { ok: false, code: 'DEVICE_OFFLINE', message: 'no Cloud API credentials for this device', transient: true };
    const body = await this.payload(n, msg);
    if ('status' in body && typeof body.status === 'number') return this.failure(n, body as GraphError);
    const r = await this.call(n, `${n.phoneNumberId}/messages`, { body: JSON.stringify(body), json: true });
    if (!r.ok) return this.failure(n, r.error);
    const id = (r.value.messages as { id?: unknown }[] | undefined)?.[0]?.id;
    if (typeof id !== 'string') return { ok: false, code: 'BAD_RESPONSE', message: 'the Graph API accepted the message without an id', transient: true };
    n.throttled = 0;
    return { ok: true, transportId: id };
  }

  private failure(n: Number, e: GraphError): SendResult {
    const now = this.o.clock.now();
    const label = e.code === null ? `Cloud API: ${e.message}` : `Cloud API error ${e.code}: ${e.message}`;
    switch (e.code) {
      case 130429: {
        // The number's throughput is exceeded: the whole device waits, a little longer each time.
        n.throttled++;
        const wait = Math.min(15 * 60_000, (this.o.throughputBackoffMs ?? 30_000) * 2 ** (n.throttled - 1));
        this.emit({ type: 'restricted', deviceId: n.ref.id, until: now + wait, reason: 'Cloud API throughput exceeded (130429)', at: now });
        return { ok: false, code: 'THROUGHPUT', message: label, transient: true };
      }
      case 131056:
        return { ok: false, code: 'PAIR_RATE_LIMIT', message: `${label} (too many messages to this recipient; it is tried again later)`, transient: true };
      case 131047:
        return {
          ok: false,
          code: 'OUTSIDE_24H_WINDOW',
          message: 'more than 24 hours since the recipient last wrote: only a template message can reach them now (Cloud API error 131047)',
          transient: false,
        };
      case 368:
      case 131048: {
        const until = now + (this.o.policyPauseMs ?? 24 * 3_600_000);
        return { ok: false, code: e.code === 368 ? 'POLICY_BLOCKED' : 'SPAM_RATE_LIMIT', message: label, transient: false, restrictedUntil: until };
      }
      case 131026:
        return { ok: false, code: 'NOT_ON_WHATSAPP', message: `${label} (the number cannot receive WhatsApp messages)`, transient: false };
    }
    // No Graph API error object (network, timeout, garbage) or a server fault: worth another attempt.
    const transient = e.code === null || e.status >= 500 || e.status === 429;
    return { ok: false, code: e.code === null ? (e.status === 0 ? 'NETWORK' : 'BAD_RESPONSE') : `CLOUD_API_${e.code}`, message: label, transient };
  }
}
