/**
 * The part of a Baileys socket the transport uses, and the factory that makes one. The transport
 * never calls makeWASocket itself: it is handed a factory, so tests drive a fake socket that emits
 * the real event names and payload shapes, and nothing in a test talks to WhatsApp.
 */
import makeWASocket, {
  Browsers,
  DEFAULT_CONNECTION_CONFIG,
  makeCacheableSignalKeyStore,
  type AnyMessageContent,
  type AuthenticationState,
  type BaileysEventEmitter,
  type CacheStore,
  type MiscMessageGenerationOptions,
  type ReachoutTimelockState,
  type WAMessage,
  type WAMessageKey,
  type WAVersion,
  type proto,
} from 'baileys';
import type { Logger } from 'pino';

export interface WaSocket {
  ev: Pick<BaileysEventEmitter, 'on' | 'off'>;
  sendMessage(jid: string, content: AnyMessageContent, options?: MiscMessageGenerationOptions): Promise<WAMessage | undefined>;
  onWhatsApp(...phoneNumbers: string[]): Promise<{ jid: string; exists: boolean }[] | undefined>;
  requestPairingCode(phoneNumber: string): Promise<string>;
  logout(msg?: string): Promise<void>;
  end(error: Error | undefined): unknown;
  signalRepository: { lidMapping: { getPNForLID(lid: string): Promise<string | null> } };
  fetchAccountReachoutTimelock(): Promise<ReachoutTimelockState>;
}

export interface SocketOptions {
  deviceId: number;
  auth: AuthenticationState;
  /** Answers WhatsApp's retry requests from the outbox, so no recipient sees "Waiting for this message". */
  getMessage(key: WAMessageKey): Promise<proto.IMessage | undefined>;
  /** Kept by the transport across sockets: a reconnect must not forget how often a message was retried. */
  msgRetryCounterCache: CacheStore;
  version: WAVersion;
  logger: Logger;
}

export type SocketFactory = (o: SocketOptions) => WaSocket;

/** The WhatsApp Web version this release connects as, unless configured (never fetched at run time). */
export const DEFAULT_WA_VERSION: WAVersion = DEFAULT_CONNECTION_CONFIG.version;

/** The real socket: Baileys' makeWASocket with the settings a broadcast sender needs. */
export const baileysSocketFactory: SocketFactory = (o) =>
  makeWASocket({
    auth: { creds: o.auth.creds, keys: makeCacheableSignalKeyStore(o.auth.keys, o.logger) },
    version: o.version,
    logger: o.logger,
    browser: Browsers.ubuntu('Fleetcast'),
    // The owner's phone keeps its notifications: a linked sender is never shown as "online".
    markOnlineOnConnect: false,
    syncFullHistory: false,
    shouldSyncHistoryMessage: () => false,
    getMessage: o.getMessage,
    msgRetryCounterCache: o.msgRetryCounterCache,
  });
