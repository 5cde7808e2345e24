/** What route modules are given: the Fastify instance with zod typing, and the services. */
import type { FastifyBaseLogger, FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Clock } from '../engine/clock.js';
import type { Engine } from '../engine/engine.js';
import type { AuthService } from '../services/accounts/auth.js';
import type { AuditService } from '../services/audit/service.js';
import type { TokenService } from '../services/accounts/tokens.js';
import type { UserService } from '../services/accounts/users.js';
import type { CampaignService } from '../services/campaigns.js';
import type { DashboardService } from '../services/dashboard.js';
import type { DeviceService } from '../services/devices.js';
import type { DeviceLinkService } from '../services/devices/link-service.js';
import type { CloudApiService } from '../services/devices/cloud-api.js';
import type { LeadImports } from '../services/leads/import/service.js';
import type { LeadService } from '../services/leads/leads.js';
import type { MediaService } from '../services/media/index.js';
import type { SequenceService } from '../services/sequences.js';
import type { WebhookService } from '../services/webhooks/service.js';
import type { Db } from '../store/db.js';

export type Api = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, ZodTypeProvider>;

export interface Services {
  db: Db;
  clock: Clock;
  auth: AuthService;
  users: UserService;
  tokens: TokenService;
  devices: DeviceService;
  leads: LeadService;
  imports: LeadImports;
  campaigns: CampaignService;
  sequences: SequenceService;
  media: MediaService;
  deviceLinks: DeviceLinkService;
  cloudApi: CloudApiService;
  webhooks: WebhookService;
  audit: AuditService;
  dashboard: DashboardService;
  /** The engine running in this process, for health figures; absent in API-only tests. */
  engine?: Engine | undefined;
}
