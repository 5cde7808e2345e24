/** Builds every application service over one store and clock. */
import type { Logger } from '../logger.js';
import type { Clock } from '../engine/clock.js';
import type { Engine } from '../engine/engine.js';
import type { Db } from '../store/db.js';
import { AuthService, defaultAuthSettings, type AuthSettings } from './accounts/auth.js';
import { PasswordHasher } from './accounts/passwords.js';
import { TokenService } from './accounts/tokens.js';
import { UserService } from './accounts/users.js';
import { CampaignService } from './campaigns.js';
import { DeviceService } from './devices.js';
import { LeadImports } from './leads/import/service.js';
import { LeadService } from './leads/leads.js';
import { SequenceService } from './sequences.js';
import type { Services } from '../api/types.js';

export interface ServiceOptions {
  log: Logger;
  /** Where uploaded import files wait for their job. */
  importDir: string;
  importMaxBytes?: number | undefined;
  /** Names this process among others sharing the database (import job ownership). */
  owner: string;
  transports: readonly string[];
  passwords?: PasswordHasher | undefined;
  auth?: Partial<AuthSettings> | undefined;
  engine?: Engine | undefined;
}

export function createServices(db: Db, clock: Clock, o: ServiceOptions): Services & { passwords: PasswordHasher } {
  const passwords = o.passwords ?? new PasswordHasher();
  const auth = new AuthService(db, clock, passwords, { ...defaultAuthSettings, ...o.auth });
  const authChanged = () => auth.changed();
  return {
    db,
    clock,
    passwords,
    auth,
    users: new UserService(db, clock, passwords, authChanged),
    tokens: new TokenService(db, clock, authChanged),
    devices: new DeviceService(db, clock, o.transports, authChanged),
    leads: new LeadService(db, clock),
    imports: new LeadImports({ db, clock, log: o.log, dir: o.importDir, owner: o.owner, ...(o.importMaxBytes ? { maxBytes: o.importMaxBytes } : {}) }),
    campaigns: new CampaignService(db, clock),
    sequences: new SequenceService(db, clock),
    engine: o.engine,
  };
}
