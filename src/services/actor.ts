/**
 * Who is acting, as every service sees it: resolved once per request from a session or a token.
 * tenantId scopes every query; deviceScope narrows a team member to its assigned devices.
 */
export interface Actor {
  userId: number;
  tenantId: number;
  email: string;
  role: 'admin' | 'member';
  /** A team member acts inside its parent's tenant, on its assigned devices only. */
  teamMember: boolean;
  /** The devices this actor may see and operate; null means all of the tenant's, and the pool. */
  deviceScope: number[] | null;
  timeZone: string;
  defaultCountry: string | null;
}

export interface LeadScope {
  tenantId: number;
  deviceIds: number[] | null;
}

export function leadScopeOf(actor: Actor): LeadScope {
  return { tenantId: actor.tenantId, deviceIds: actor.deviceScope };
}

/** Whether the actor may touch this device (which is already known to be the tenant's). */
export function canUseDevice(actor: Actor, deviceId: number): boolean {
  return actor.deviceScope === null || actor.deviceScope.includes(deviceId);
}
