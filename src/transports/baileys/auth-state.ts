/**
 * A Baileys auth state kept in the database instead of files: the credentials and every Signal key
 * type (pre-key, session, sender-key, sender-key-memory, app-state-sync-key, app-state-sync-version,
 * lid-mapping, device-list, tctoken, identity-key), each value serialised with Baileys' BufferJSON
 * and sealed with the SecretBox under its own device, kind and key id.
 *
 * It follows the shape of Baileys' useMultiFileAuthState: `state.creds` is the live object the
 * socket mutates, `saveCreds()` writes it (on every `creds.update`), and `state.keys` reads and
 * writes keys as the socket asks, one statement per batch. Writes of one device are chained, so
 * they reach the database in the order the socket made them.
 */
import { BufferJSON, initAuthCreds, proto, type AuthenticationCreds, type AuthenticationState, type SignalDataSet, type SignalDataTypeMap } from 'baileys';
import type { Clock } from '../../engine/clock.js';
import type { Queryable } from '../../store/db.js';
import { CREDS_KIND, deleteAuthState, loadAuthRows, loadCredsRow, writeAuthRows, type AuthWrite } from '../../store/sql/auth-state.js';
import type { SecretBox } from '../../services/secrets/secret-box.js';

export interface DeviceAuth {
  state: AuthenticationState;
  saveCreds(): Promise<void>;
  /** Resolves once every write asked for so far is in the database. */
  flushed(): Promise<void>;
}

function context(deviceId: number, kind: string, keyId: string): string {
  return `auth:${deviceId}:${kind}:${keyId}`;
}

export class DbAuthStore {
  constructor(
    private readonly db: Queryable,
    private readonly box: SecretBox,
    private readonly clock: Clock,
  ) {}

  private now(): Date {
    return new Date(this.clock.now());
  }

  /** The stored credentials, or null when the device has none. */
  async loadCreds(deviceId: number): Promise<AuthenticationCreds | null> {
    const row = await loadCredsRow(this.db, deviceId);
    return row ? this.box.openJson<AuthenticationCreds>(row, context(deviceId, CREDS_KIND, ''), BufferJSON.reviver) : null;
  }

  /** Whether the device was ever paired (it has an account to log in with). */
  async hasAccount(deviceId: number): Promise<boolean> {
    const creds = await this.loadCreds(deviceId);
    return creds !== null && creds.me !== undefined && creds.account !== undefined && creds.account !== null;
  }

  async wipe(deviceId: number): Promise<void> {
    await deleteAuthState(this.db, deviceId);
  }

  /** The device's auth state; fresh credentials (saved at once) when it has none. */
  async open(deviceId: number): Promise<DeviceAuth> {
    let chain: Promise<void> = Promise.resolve();
    const write = (writes: AuthWrite[]): Promise<void> => {
      const next = chain.then(() => writeAuthRows(this.db, deviceId, writes, this.now()));
      chain = next.catch(() => undefined);
      return next;
    };
    const stored = await this.loadCreds(deviceId);
    const creds = stored ?? initAuthCreds();
    const saveCreds = () => write([{ kind: CREDS_KIND, keyId: '', data: this.box.sealJson(creds, context(deviceId, CREDS_KIND, ''), BufferJSON.replacer) }]);
    if (!stored) await saveCreds();
    const keys = {
      get: async <T extends keyof SignalDataTypeMap>(type: T, ids: string[]): Promise<{ [id: string]: SignalDataTypeMap[T] }> => {
        await chain;
        const out: { [id: string]: SignalDataTypeMap[T] } = {};
        for (const r of await loadAuthRows(this.db, deviceId, type, ids)) {
          let value = this.box.openJson<unknown>(r.data, context(deviceId, type, r.key_id), BufferJSON.reviver);
          if (type === 'app-state-sync-key' && value) value = proto.Message.AppStateSyncKeyData.fromObject(value as object);
          out[r.key_id] = value as SignalDataTypeMap[T];
        }
        return out;
      },
      set: async (data: SignalDataSet): Promise<void> => {
        const writes: AuthWrite[] = [];
        for (const kind of Object.keys(data) as (keyof SignalDataSet)[]) {
          const entries = data[kind] ?? {};
          for (const [id, value] of Object.entries(entries)) {
            writes.push({ kind, keyId: id, data: value === null || value === undefined ? null : this.box.sealJson(value, context(deviceId, kind, id), BufferJSON.replacer) });
          }
        }
        await write(writes);
      },
      clear: async (): Promise<void> => {
        await chain;
        await this.wipe(deviceId);
        await saveCreds();
      },
    };
    return { state: { creds, keys }, saveCreds, flushed: () => chain };
  }
}
