/**
 * Accounts: admins manage every account; a tenant owner manages its own team members; everyone
 * manages their own profile. A team member's devices are assigned by its owner.
 */
import { IANAZone } from 'luxon';
import type { Clock } from '../../engine/clock.js';
import { DEVICES_CHANNEL } from '../../engine/events.js';
import type { Db, Queryable } from '../../store/db.js';
import {
  deleteUser,
  getUser,
  insertUser,
  listUsers,
  updateUser,
  type UserChanges,
  type UserRow,
} from '../../store/sql/users.js';
import { assignedDevices, setAssignedDevices, liveDeviceIds } from '../../store/sql/members.js';
import { deleteUserSessions } from '../../store/sql/sessions.js';
import { optOutWordsOf, setOptOutWords } from '../../store/sql/opt-out-words.js';
import type { Actor } from '../actor.js';
import { AppError, conflict, forbidden, notFound } from '../errors.js';
import { isSupportedCountry } from '../leads/phone.js';
import type { PasswordHasher } from './passwords.js';
import { userView, type UserView } from './views.js';

export interface NewAccount {
  email: string;
  password: string;
  name?: string | undefined;
  role?: 'admin' | 'member' | undefined;
  time_zone?: string | undefined;
  default_country?: string | null | undefined;
}

export interface AccountChanges {
  email?: string | undefined;
  name?: string | undefined;
  role?: 'admin' | 'member' | undefined;
  time_zone?: string | undefined;
  default_country?: string | null | undefined;
  disabled?: boolean | undefined;
}

export interface MemberView extends UserView {
  device_ids: number[];
}

/** Zone and country are checked here, where the library knows them, not by a pattern. */
export function checkLocale(timeZone: string | undefined, country: string | null | undefined): void {
  const details = [];
  if (timeZone !== undefined && !IANAZone.isValidZone(timeZone)) details.push({ path: 'time_zone', message: `unknown IANA time zone "${timeZone}"` });
  if (country !== undefined && country !== null && !isSupportedCountry(country)) details.push({ path: 'default_country', message: `unknown country code "${country}"` });
  if (details.length > 0) throw new AppError('VALIDATION_FAILED', 400, 'invalid time zone or country', details);
}

function isUniqueViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === '23505';
}

export class UserService {
  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly passwords: PasswordHasher,
    /** Called after a change that alters who may act, or on what (cached credentials are dropped). */
    private readonly authChanged: () => Promise<void> = async () => {},
  ) {}

  private now(): Date {
    return new Date(this.clock.now());
  }

  private async create(input: NewAccount, role: 'admin' | 'member', parentId: number | null, fallbackZone: string): Promise<UserRow> {
    checkLocale(input.time_zone, input.default_country);
    const passwordHash = await this.passwords.hash(input.password);
    try {
      const id = await insertUser(
        this.db,
        {
          email: input.email.trim(),
          name: input.name ?? '',
          role,
          timeZone: input.time_zone ?? fallbackZone,
          defaultCountry: input.default_country ?? null,
          passwordHash,
          parentId,
        },
        this.now(),
      );
      return (await getUser(this.db, id))!;
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict('EMAIL_TAKEN', 'an account with this e-mail exists', [{ path: 'email', message: 'already in use' }]);
      throw err;
    }
  }

  // ---- admin ----

  private requireAdmin(actor: Actor): void {
    if (actor.role !== 'admin' || actor.teamMember) throw forbidden('ADMIN_REQUIRED', 'only an admin may manage accounts');
  }

  async adminCreate(actor: Actor, input: NewAccount): Promise<UserView> {
    this.requireAdmin(actor);
    return userView(await this.create(input, input.role ?? 'member', null, 'UTC'));
  }

  async adminList(actor: Actor, page: { after?: number | undefined; limit: number; q?: string | undefined }): Promise<UserView[]> {
    this.requireAdmin(actor);
    return (await listUsers(this.db, page)).map(userView);
  }

  async adminGet(actor: Actor, id: number): Promise<UserView> {
    this.requireAdmin(actor);
    const u = await getUser(this.db, id);
    if (!u) throw notFound('user');
    return userView(u);
  }

  async adminUpdate(actor: Actor, id: number, changes: AccountChanges): Promise<UserView> {
    this.requireAdmin(actor);
    if (id === actor.userId && (changes.disabled === true || changes.role === 'member')) {
      throw conflict('CANNOT_DEMOTE_SELF', 'an admin cannot disable or demote itself');
    }
    return userView(await this.update(id, changes));
  }

  async adminDelete(actor: Actor, id: number): Promise<void> {
    this.requireAdmin(actor);
    if (id === actor.userId) throw conflict('CANNOT_DELETE_SELF', 'an admin cannot delete itself');
    await this.remove(id, undefined);
  }

  private async update(id: number, changes: AccountChanges, parentId?: number): Promise<UserRow> {
    checkLocale(changes.time_zone, changes.default_country);
    const c: UserChanges = {
      email: changes.email?.trim(),
      name: changes.name,
      role: changes.role,
      timeZone: changes.time_zone,
      defaultCountry: changes.default_country,
      disabled: changes.disabled,
    };
    try {
      const row = await this.db.transaction(async (tx) => {
        const r = await updateUser(tx, id, c, this.now(), parentId);
        // A disabled account is signed out everywhere at once, not when its sessions expire.
        if (r && changes.disabled === true) await deleteUserSessions(tx, id, null);
        return r;
      });
      if (!row) throw notFound(parentId === undefined ? 'user' : 'member');
      await this.authChanged();
      return row;
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict('EMAIL_TAKEN', 'an account with this e-mail exists', [{ path: 'email', message: 'already in use' }]);
      throw err;
    }
  }

  private async remove(id: number, parentId: number | undefined): Promise<void> {
    const devices = await this.db.transaction((tx) => deleteUser(tx, id, this.now(), parentId));
    if (devices === null) throw notFound(parentId === undefined ? 'user' : 'member');
    await this.authChanged();
    if (devices.length > 0) await this.db.notify(DEVICES_CHANNEL, JSON.stringify({ devices }));
  }

  // ---- self ----

  async me(actor: Actor): Promise<UserView> {
    const u = await getUser(this.db, actor.userId);
    if (!u) throw notFound('user');
    return userView(u);
  }

  async updateMe(actor: Actor, changes: { name?: string | undefined; time_zone?: string | undefined; default_country?: string | null | undefined }): Promise<UserView> {
    return userView(await this.update(actor.userId, changes));
  }

  /** The tenant's opt-out words (null: the defaults); a team member sees its tenant's. */
  async optOutWords(actor: Actor): Promise<string[] | null> {
    return optOutWordsOf(this.db, actor.tenantId);
  }

  async setOptOutWords(actor: Actor, words: string[] | null): Promise<void> {
    if (actor.teamMember) throw forbidden('TEAM_MEMBER_FORBIDDEN', "team members cannot change the tenant's opt-out words");
    const unique = words === null ? null : [...new Set(words.map((w) => w.trim()).filter((w) => w !== ''))];
    await setOptOutWords(this.db, actor.tenantId, unique, this.now());
  }

  // ---- team members ----

  private requireOwner(actor: Actor): void {
    if (actor.teamMember) throw forbidden('TEAM_MEMBER_FORBIDDEN', 'team members cannot manage the team');
  }

  private async memberViews(db: Queryable, rows: UserRow[]): Promise<MemberView[]> {
    const devices = await assignedDevices(db, rows.map((u) => u.id));
    return rows.map((u) => ({ ...userView(u), device_ids: devices.get(u.id) ?? [] }));
  }

  private async memberView(db: Queryable, u: UserRow): Promise<MemberView> {
    return (await this.memberViews(db, [u]))[0]!;
  }

  private async checkDevices(db: Queryable, actor: Actor, deviceIds: readonly number[]): Promise<void> {
    const live = new Set(await liveDeviceIds(db, actor.tenantId, deviceIds));
    const missing = deviceIds.filter((id) => !live.has(id));
    if (missing.length > 0) throw new AppError('DEVICE_NOT_FOUND', 404, 'device not found', missing.map((id) => ({ path: 'device_ids', message: `no device ${id}` })));
  }

  async createMember(actor: Actor, input: NewAccount & { device_ids?: number[] | undefined }): Promise<MemberView> {
    this.requireOwner(actor);
    const deviceIds = [...new Set(input.device_ids ?? [])];
    await this.checkDevices(this.db, actor, deviceIds);
    const row = await this.create({ ...input, time_zone: input.time_zone ?? actor.timeZone }, 'member', actor.tenantId, actor.timeZone);
    await setAssignedDevices(this.db, row.id, deviceIds);
    return this.memberView(this.db, row);
  }

  async listMembers(actor: Actor, page: { after?: number | undefined; limit: number }): Promise<MemberView[]> {
    this.requireOwner(actor);
    const rows = await listUsers(this.db, { ...page, parentId: actor.tenantId });
    return this.memberViews(this.db, rows);
  }

  private async member(actor: Actor, id: number): Promise<UserRow> {
    this.requireOwner(actor);
    const u = await getUser(this.db, id);
    if (!u || u.parent_id !== actor.tenantId) throw notFound('member');
    return u;
  }

  async getMember(actor: Actor, id: number): Promise<MemberView> {
    return this.memberView(this.db, await this.member(actor, id));
  }

  async updateMember(actor: Actor, id: number, changes: Omit<AccountChanges, 'role'>): Promise<MemberView> {
    await this.member(actor, id);
    return this.memberView(this.db, await this.update(id, changes, actor.tenantId));
  }

  async setMemberDevices(actor: Actor, id: number, deviceIds: number[]): Promise<MemberView> {
    const u = await this.member(actor, id);
    const unique = [...new Set(deviceIds)];
    await this.db.transaction(async (tx) => {
      await this.checkDevices(tx, actor, unique);
      await setAssignedDevices(tx, id, unique);
    });
    await this.authChanged();
    return this.memberView(this.db, u);
  }

  async deleteMember(actor: Actor, id: number): Promise<void> {
    await this.member(actor, id);
    await this.remove(id, actor.tenantId);
  }
}
