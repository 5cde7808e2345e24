import { sql as engine } from './001_engine.js';
import { sql as accountsLeads } from './002_accounts_leads.js';
import { sql as campaigns } from './003_campaigns.js';
import { sql as sequences } from './004_sequences.js';
import { sql as operations } from './005_operations.js';
import { sql as transports } from './006_transports.js';
import { sql as engineProcesses } from './008_engine_processes.js';
import { sql as dashboard } from './009_dashboard.js';
import { sql as campaignFailures } from './010_campaign_failures.js';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Forward-only: a released migration is never edited; a change is a new, higher number. */
export const migrations: readonly Migration[] = [
  { version: 1, name: 'engine', sql: engine },
  { version: 2, name: 'accounts_leads', sql: accountsLeads },
  { version: 3, name: 'campaigns', sql: campaigns },
  { version: 4, name: 'sequences', sql: sequences },
  { version: 5, name: 'operations', sql: operations },
  { version: 6, name: 'transports', sql: transports },
  { version: 8, name: 'engine_processes', sql: engineProcesses },
  { version: 9, name: 'dashboard', sql: dashboard },
  { version: 10, name: 'campaign_failures', sql: campaignFailures },
];
