/**
 * How a process connects to PostgreSQL: the pool holds the configured number of connections, and
 * LISTEN can go to a URL of its own (behind PgBouncer in transaction mode a LISTEN would be lost
 * with its server connection, so it goes to PostgreSQL directly), while notifications still reach
 * every process.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { openPostgres } from '../../src/store/postgres.js';

const url = process.env.DATABASE_URL;
const skip = url ? false : 'needs DATABASE_URL';

function withApp(base: string, name: string): string {
  const u = new URL(base);
  u.searchParams.set('application_name', name);
  return u.toString();
}

describe('PostgreSQL connections', { skip }, () => {
  it('sends LISTEN to its own URL and keeps the pool within its size', async () => {
    const tag = randomBytes(4).toString('hex');
    const a = await openPostgres({ connectionString: withApp(url!, `fc_pool_${tag}`), listenConnectionString: withApp(url!, `fc_listen_${tag}`), poolSize: 3 });
    const b = await openPostgres({ connectionString: url! });
    try {
      const got: string[] = [];
      const off = await a.listen('fleetcast_conn_test', (p) => got.push(p));
      // Six statements at once on a pool of three: never more than three pool connections.
      await Promise.all(Array.from({ length: 6 }, () => a.query('select pg_sleep(0.05)')));
      const seen = await b.query<{ application_name: string; n: number; listening: number }>(
        `select application_name, count(*)::int as n, count(*) filter (where query ilike 'listen %')::int as listening
           from pg_stat_activity where application_name like $1 group by application_name order by application_name`,
        [`fc_%_${tag}`],
      );
      assert.deepEqual(
        seen.rows.map((r) => [r.application_name, r.n <= 3, r.listening]),
        [
          [`fc_listen_${tag}`, true, 1],
          [`fc_pool_${tag}`, true, 0],
        ],
      );
      assert.equal(seen.rows.find((r) => r.application_name === `fc_listen_${tag}`)!.n, 1);
      await b.notify('fleetcast_conn_test', 'hello');
      const end = Date.now() + 5000;
      while (got.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(got, ['hello']);
      await off();
    } finally {
      await a.close();
      await b.close();
    }
  });
});
