/** Builds every application service over one store and clock. */
import { join } from 'node:path';
import type { Logger } from '../logger.js';
import type { Clock } from '../engine/clock.js';
import type { Engine } from '../engine/engine.js';
import type { Db } from '../store/db.js';
import { AuthService, defaultAuthSettings, type AuthSettings } from './accounts/auth.js';
import { AuditService } from './audit/service.js';
import { PasswordHasher } from './accounts/passwords.js';
import { TokenService } from './accounts/tokens.js';
import { UserService } from './accounts/users.js';
import { CampaignService, type MediaPreparer } from './campaigns.js';
import { DashboardService } from './dashboard.js';
import { DeviceService } from './devices.js';
import { DeviceLinkService } from './devices/link-service.js';
import { CloudApiService } from './devices/cloud-api.js';
import { SecretBox } from './secrets/secret-box.js';
import { randomBytes } from 'node:crypto';
import { LeadImports } from './leads/import/service.js';
import { LeadService } from './leads/leads.js';
import { MediaService } from './media/index.js';
import { SequenceService } from './sequences.js';
import { WebhookSecrets } from './webhooks/secrets.js';
import { WebhookService } from './webhooks/service.js';
import type { Services } from '../api/types.js';

export interface ServiceOptions {
  log: Logger;
  /** Where uploaded import files wait for their job. */
  importDir: string;
  importMaxBytes?: number | undefined;
  /** Where campaign media files are kept; default: a `media` folder inside importDir. */
  mediaDir?: string | undefined;
  /** Let media URLs reach private and loopback addresses (tests; installs whose users are all trusted). */
  mediaAllowPrivateAddresses?: boolean | undefined;
  /** Names this process among others sharing the database (import job ownership). */
  owner: string;
  transports: readonly string[];
  passwords?: PasswordHasher | undefined;
  auth?: Partial<AuthSettings> | undefined;
  engine?: Engine | undefined;
  /** Seals Cloud API credentials and webhook signing secrets; default: a key of this process only (tests). */
  secretBox?: SecretBox | undefined;
  /** The deployment's opt-out words, for replies that arrive through the Cloud API webhook. */
  optOutWords?: readonly string[] | undefined;
  /** Let webhook URLs reach private and loopback addresses (tests; installs whose users are all trusted). */
  webhookAllowPrivateAddresses?: boolean | undefined;
}

export function createServices(db: Db, clock: Clock, o: ServiceOptions): Services & { passwords: PasswordHasher } {
  const passwords = o.passwords ?? new PasswordHasher();
  const auth = new AuthService(db, clock, passwords, { ...defaultAuthSettings, ...o.auth });
  const authChanged = () => auth.changed();
  const deviceLinks = new DeviceLinkService(db, clock);
  const box = o.secretBox ?? new SecretBox(randomBytes(32));
  const media = new MediaService(db, clock, { dir: o.mediaDir ?? join(o.importDir, 'media'), allowPrivateAddresses: o.mediaAllowPrivateAddresses, log: o.log });
  return {
    db,
    clock,
    passwords,
    auth,
    users: new UserService(db, clock, passwords, authChanged),
    tokens: new TokenService(db, clock, authChanged),
    devices: new DeviceService(db, clock, o.transports, authChanged, deviceLinks),
    leads: new LeadService(db, clock),
    imports: new LeadImports({ db, clock, log: o.log, dir: o.importDir, owner: o.owner, ...(o.importMaxBytes ? { maxBytes: o.importMaxBytes } : {}) }),
    campaigns: new CampaignService(db, clock, campaignMedia(media)),
    sequences: new SequenceService(db, clock, campaignMedia(media)),
    media,
    deviceLinks,
    cloudApi: new CloudApiService(db, clock, box, o.optOutWords),
    audit: new AuditService(db, clock),
    dashboard: new DashboardService(db, clock),
    webhooks: new WebhookService(db, clock, { secrets: new WebhookSecrets(box), allowPrivateAddresses: o.webhookAllowPrivateAddresses ?? false }),
    engine: o.engine,
  };
}

/** Campaign media as the outbox carries it: the stored file, and the URL it came from. */
function campaignMedia(media: MediaService): MediaPreparer {
  return {
    async prepareForCampaign(actor, input) {
      const m = await media.prepareForCampaign(actor, input);
      return {
        kind: m.kind,
        mediaId: m.mediaId,
        storageKey: m.storageKey,
        mimeType: m.mimeType,
        bytes: m.bytes,
        ...(m.sourceUrl !== undefined ? { url: m.sourceUrl } : {}),
        ...(m.fileName !== undefined ? { fileName: m.fileName } : {}),
        ...(m.caption !== undefined ? { caption: m.caption } : {}),
      };
    },
  };
}
