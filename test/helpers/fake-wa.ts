/**
 * A fake Baileys socket: the real event names and payload shapes (connection.update with qr, open,
 * close and a Boom whose output.statusCode is a DisconnectReason; creds.update; messages.update;
 * messages.upsert; message-capping.update), driven by the test, and a record of what the transport
 * asked of it. Nothing here talks to WhatsApp.
 */
import { EventEmitter } from 'node:events';
import { Boom } from '@hapi/boom';
import type { BaileysEventMap, ReachoutTimelockState } from 'baileys';
import type { SocketFactory, SocketOptions, WaSocket } from '../../src/transports/baileys/socket.js';

export class FakeSocket implements WaSocket {
  readonly ev = new EventEmitter() as unknown as WaSocket['ev'] & { emit<T extends keyof BaileysEventMap>(e: T, p: BaileysEventMap[T]): boolean };
  readonly sent: { jid: string; content: unknown; messageId: string | undefined }[] = [];
  readonly checked: string[] = [];
  pairingPhone: string | null = null;
  loggedOut = false;
  ended = false;
  /** Numbers (digits) that are not on WhatsApp. */
  readonly absent = new Set<string>();
  readonly lids = new Map<string, string>();
  timelock: ReachoutTimelockState = { isActive: false };
  /** What the next sendMessage does besides returning: e.g. a refusal from WhatsApp. */
  onSend: ((messageId: string, jid: string) => void) | null = null;
  readonly signalRepository = { lidMapping: { getPNForLID: async (lid: string) => this.lids.get(lid) ?? null } };

  constructor(
    readonly opts: SocketOptions,
    readonly createdAt: number,
  ) {}

  emit<T extends keyof BaileysEventMap>(event: T, payload: BaileysEventMap[T]): void {
    this.ev.emit(event, payload);
  }

  qr(text: string): void {
    this.emit('connection.update', { qr: text });
  }

  open(): void {
    this.emit('connection.update', { connection: 'open' });
  }

  close(statusCode: number, message = 'closed'): void {
    this.emit('connection.update', { connection: 'close', lastDisconnect: { error: new Boom(message, { statusCode }), date: new Date(0) } });
  }

  /** What WhatsApp sends when a phone pairs: the account in creds.update, then isNewLogin. */
  pair(jid: string): void {
    this.emit('creds.update', {
      me: { id: jid, name: 'Owner' },
      account: { details: Buffer.from('device-identity'), accountSignatureKey: Buffer.from('k'), accountSignature: Buffer.from('s'), deviceSignature: Buffer.from('d') },
      platform: 'android',
    });
    this.emit('connection.update', { isNewLogin: true, qr: undefined });
  }

  async sendMessage(jid: string, content: unknown, options?: { messageId?: string }) {
    this.sent.push({ jid, content, messageId: options?.messageId });
    const id = options?.messageId ?? 'x';
    queueMicrotask(() => this.onSend?.(id, jid));
    return { key: { id, remoteJid: jid, fromMe: true } };
  }

  async onWhatsApp(...phones: string[]) {
    this.checked.push(...phones);
    return phones.map((p) => ({ jid: `${p}@s.whatsapp.net`, exists: !this.absent.has(p) }));
  }

  async requestPairingCode(phone: string): Promise<string> {
    this.pairingPhone = phone;
    return 'ABCD2345';
  }

  async logout(): Promise<void> {
    this.loggedOut = true;
  }

  end(): void {
    this.ended = true;
  }

  async fetchAccountReachoutTimelock(): Promise<ReachoutTimelockState> {
    return this.timelock;
  }
}

/** A factory that keeps every socket it made, in order. */
export function fakeFactory(now: () => number): { factory: SocketFactory; sockets: FakeSocket[]; of(deviceId: number): FakeSocket[]; last(deviceId: number): FakeSocket } {
  const sockets: FakeSocket[] = [];
  const of = (id: number) => sockets.filter((s) => s.opts.deviceId === id);
  return {
    sockets,
    factory: (o) => {
      const s = new FakeSocket(o, now());
      sockets.push(s);
      return s;
    },
    of,
    last: (id) => {
      const list = of(id);
      if (list.length === 0) throw new Error(`no socket for device ${id}`);
      return list[list.length - 1]!;
    },
  };
}
