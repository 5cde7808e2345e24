/** API tokens: the secret is shown once, at creation; only its hash is kept. */
import type { Clock } from '../../engine/clock.js';
import type { Db } from '../../store/db.js';
import { getToken, insertToken, listTokens, revokeToken } from '../../store/sql/sessions.js';
import type { Actor } from '../actor.js';
import { notFound } from '../errors.js';
import { newSecret, secretHash } from './secrets.js';
import { tokenView, type TokenView } from './views.js';

const TOKEN_PREFIX = 'fct_';

export class TokenService {
  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly authChanged: () => Promise<void> = async () => {},
  ) {}

  async create(actor: Pick<Actor, 'userId'>, input: { name: string; expires_at?: string | undefined }): Promise<TokenView & { token: string }> {
    const token = newSecret(TOKEN_PREFIX);
    const row = await insertToken(
      this.db,
      {
        userId: actor.userId,
        name: input.name,
        secretHash: secretHash(token),
        prefix: token.slice(0, TOKEN_PREFIX.length + 6),
        expiresAt: input.expires_at ? new Date(input.expires_at) : null,
      },
      new Date(this.clock.now()),
    );
    return { ...tokenView(row), token };
  }

  async list(actor: Actor, page: { after?: number | undefined; limit: number }): Promise<TokenView[]> {
    return (await listTokens(this.db, actor.userId, page.after, page.limit)).map(tokenView);
  }

  async get(actor: Actor, id: number): Promise<TokenView> {
    const row = await getToken(this.db, actor.userId, id);
    if (!row) throw notFound('token');
    return tokenView(row);
  }

  async revoke(actor: Actor, id: number): Promise<void> {
    const row = await revokeToken(this.db, actor.userId, id, new Date(this.clock.now()));
    if (!row) throw notFound('token');
    await this.authChanged();
  }
}

export function looksLikeToken(s: string): boolean {
  return s.startsWith(TOKEN_PREFIX);
}
