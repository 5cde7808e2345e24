/**
 * Cloud API devices: their credentials (set through the devices API, sealed, never shown again)
 * and the webhook Meta calls with message statuses and incoming messages.
 *
 * The webhook is public: it is reachable without credentials, but a POST does nothing unless its
 * X-Hub-Signature-256 is the HMAC-SHA256 of the raw body under the app secret of a device that owns
 * the phone-number id named in the payload; changes for any other number are ignored. The GET
 * handshake echoes hub.challenge only for a verify token some device was given. Statuses feed the
 * receipt path (delivered, read) or fail the message with WhatsApp's reason; incoming messages feed
 * the reply path (replies end drips, opt-out words opt the lead out), as a linked device's would.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../../engine/clock.js';
import { DEVICES_CHANNEL } from '../../engine/events.js';
import { applyReply, DEFAULT_OPT_OUT_WORDS } from '../../engine/replies.js';
import type { Db } from '../../store/db.js';
import { cloudNumbersByPhoneId, hasVerifyToken, saveCloudNumber, type CloudNumberRow } from '../../store/sql/cloud-api.js';
import { markLinked } from '../../store/sql/device-links.js';
import { getDevice, pauseDevice } from '../../store/sql/devices.js';
import { recordReceipts, type Receipt } from '../../store/sql/messages.js';
import { failSentMessage } from '../../store/sql/transport-messages.js';
import { CALLBACK_PREFIX, credentialsContext, type CloudCredentials } from '../../transports/cloud-api/transport.js';
import type { Actor } from '../actor.js';
import { AppError, conflict, notFound } from '../errors.js';
import type { SecretBox } from '../secrets/secret-box.js';
import { encodeLinkCommand, LINKS_CHANNEL } from './link-channel.js';

export interface CloudCredentialsInput {
  phone_number_id: string;
  access_token: string;
  app_secret?: string | null | undefined;
  verify_token?: string | null | undefined;
}

export interface CloudNumberView {
  device_id: number;
  phone_number_id: string;
  has_app_secret: boolean;
  has_verify_token: boolean;
  updated_at: string;
}

export interface WebhookOutcome {
  receipts: number;
  failed: number;
  replies: number;
  ignored: number;
}

const hashToken = (t: string) => createHash('sha256').update(t).digest('hex');

/** Statuses that end a device's sending for a while when WhatsApp reports them after the fact. */
const PAUSING_CODES = new Set([368, 131048]);

export class CloudApiService {
  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly box: SecretBox,
    private readonly optOutWords: readonly string[] = DEFAULT_OPT_OUT_WORDS,
  ) {}

  private now(): Date {
    return new Date(this.clock.now());
  }

  async setCredentials(actor: Actor, id: number, input: CloudCredentialsInput): Promise<CloudNumberView> {
    const d = await getDevice(this.db, actor.tenantId, id);
    if (!d || (actor.deviceScope !== null && !actor.deviceScope.includes(id))) throw notFound('device');
    if (d.transport !== 'cloud_api') throw conflict('NOT_CLOUD_API', 'only a cloud_api device takes Cloud API credentials');
    const creds: CloudCredentials = { accessToken: input.access_token, appSecret: input.app_secret ?? null, verifyToken: input.verify_token ?? null };
    const row = await this.db.transaction(async (tx) => {
      const r = await saveCloudNumber(tx, actor.tenantId, id, input.phone_number_id, creds.verifyToken ? hashToken(creds.verifyToken) : null, this.box.sealJson(creds, credentialsContext(id)), this.now());
      await markLinked(tx, id, null);
      return r;
    });
    // The lease holder reads the new credentials and brings the number online.
    await this.db.notify(LINKS_CHANNEL, encodeLinkCommand({ device: id, action: 'refresh' }));
    await this.db.notify(DEVICES_CHANNEL, JSON.stringify({ devices: [id] }));
    return { device_id: id, phone_number_id: row.phone_number_id, has_app_secret: creds.appSecret !== null, has_verify_token: creds.verifyToken !== null, updated_at: row.updated_at.toISOString() };
  }

  /** The GET handshake: the challenge back for a known verify token, else a refusal. */
  async handshake(mode: string | undefined, token: string | undefined, challenge: string | undefined): Promise<string> {
    if (mode !== 'subscribe' || !token || challenge === undefined || !(await hasVerifyToken(this.db, hashToken(token)))) {
      throw new AppError('WEBHOOK_VERIFY_FAILED', 403, 'unknown verify token');
    }
    return challenge;
  }

  async receive(raw: Buffer, signature: string | undefined): Promise<WebhookOutcome> {
    if (!signature) throw new AppError('SIGNATURE_MISSING', 401, 'the X-Hub-Signature-256 header is missing');
    let payload: unknown;
    try {
      payload = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new AppError('INVALID_JSON', 400, 'the request body is not valid JSON');
    }
    const changes = changesOf(payload);
    const numbers = await cloudNumbersByPhoneId(this.db, [...new Set(changes.map((c) => c.phoneNumberId))]);
    const verified = new Map<string, CloudNumberRow>();
    for (const n of numbers) {
      const creds = this.box.openJson<CloudCredentials>(n.secrets, credentialsContext(n.device_id));
      if (creds.appSecret && signatureMatches(raw, signature, creds.appSecret)) verified.set(n.phone_number_id, n);
    }
    if (verified.size === 0) throw new AppError('SIGNATURE_INVALID', 401, 'the X-Hub-Signature-256 does not match the body');
    const out: WebhookOutcome = { receipts: 0, failed: 0, replies: 0, ignored: 0 };
    const receipts: Receipt[] = [];
    for (const c of changes) {
      const n = verified.get(c.phoneNumberId);
      if (!n) {
        out.ignored++;
        continue;
      }
      for (const s of c.statuses) {
        const messageId = s.callback?.startsWith(CALLBACK_PREFIX) ? Number(s.callback.slice(CALLBACK_PREFIX.length)) : NaN;
        if (!Number.isSafeInteger(messageId)) {
          out.ignored++;
          continue;
        }
        const at = s.timestamp ?? this.clock.now();
        if (s.status === 'delivered' || s.status === 'read') receipts.push({ id: messageId, deviceId: n.device_id, status: s.status, at });
        else if (s.status === 'failed') {
          const code = s.errorCode;
          out.failed += await failSentMessage(this.db, n.device_id, messageId, code === null ? 'CLOUD_API_FAILED' : `CLOUD_API_${code}`, s.errorText ?? 'WhatsApp could not deliver the message', new Date(at));
          if (code !== null && PAUSING_CODES.has(code)) await pauseDevice(this.db, n.device_id, new Date(this.clock.now() + 24 * 3_600_000), `Cloud API error ${code}`, new Date(this.clock.now()));
        }
      }
      for (const m of c.messages) {
        const r = await this.db.transaction((tx) => applyReply(tx, { deviceId: n.device_id, from: m.from, text: m.text, at: new Date(m.timestamp ?? this.clock.now()) }, this.optOutWords));
        if (r.leadIds.length > 0) out.replies++;
        else out.ignored++;
      }
    }
    out.receipts = await recordReceipts(this.db, receipts);
    if (out.failed > 0) await this.db.notify(DEVICES_CHANNEL, JSON.stringify({ devices: [...verified.values()].map((n) => n.device_id) }));
    return out;
  }
}

function signatureMatches(raw: Buffer, header: string, secret: string): boolean {
  const m = /^sha256=([0-9a-f]{64})$/i.exec(header.trim());
  if (!m) return false;
  const expected = createHmac('sha256', secret).update(raw).digest();
  return timingSafeEqual(expected, Buffer.from(m[1]!, 'hex'));
}

interface Change {
  phoneNumberId: string;
  statuses: { status: string; callback: string | null; timestamp: number | null; errorCode: number | null; errorText: string | null }[];
  messages: { from: string; text: string; timestamp: number | null }[];
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const seconds = (v: unknown): number | null => {
  const n = Number(v);
  return typeof v === 'string' && Number.isFinite(n) && n > 0 ? n * 1000 : null;
};

/**
 * The changes a webhook payload carries, read defensively: it is untrusted until its signature is
 * checked, and Meta adds fields over time. Anything not understood is skipped.
 */
function changesOf(payload: unknown): Change[] {
  const out: Change[] = [];
  const entries = (payload as { entry?: unknown })?.entry;
  if (!Array.isArray(entries)) return out;
  for (const e of entries) {
    const changes = (e as { changes?: unknown })?.changes;
    if (!Array.isArray(changes)) continue;
    for (const c of changes) {
      const value = (c as { value?: Record<string, unknown> })?.value;
      const id = str((value?.metadata as { phone_number_id?: unknown } | undefined)?.phone_number_id);
      if (!value || !id) continue;
      const statuses = Array.isArray(value.statuses) ? (value.statuses as Record<string, unknown>[]) : [];
      const messages = Array.isArray(value.messages) ? (value.messages as Record<string, unknown>[]) : [];
      out.push({
        phoneNumberId: id,
        statuses: statuses.map((s) => {
          const err = Array.isArray(s.errors) ? (s.errors[0] as { code?: unknown; title?: unknown; message?: unknown; error_data?: { details?: unknown } }) : undefined;
          return {
            status: str(s.status) ?? '',
            callback: str(s.biz_opaque_callback_data),
            timestamp: seconds(s.timestamp),
            errorCode: typeof err?.code === 'number' ? err.code : null,
            errorText: str(err?.error_data?.details) ?? str(err?.message) ?? str(err?.title),
          };
        }),
        messages: messages.flatMap((m) => {
          const from = str(m.from);
          const text = str((m.text as { body?: unknown } | undefined)?.body) ?? str((m.button as { text?: unknown } | undefined)?.text) ?? str((m.interactive as { button_reply?: { title?: unknown } } | undefined)?.button_reply?.title);
          return from && /^\d{6,15}$/.test(from) && text ? [{ from: `+${from}`, text, timestamp: seconds(m.timestamp) }] : [];
        }),
      });
    }
  }
  return out;
}
