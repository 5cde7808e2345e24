/** Campaigns as a list or as a month calendar of their start (or finish) days. */
import { useState } from 'react';
import { api, type Campaign, type Page } from '../api';
import { dateTime, dayKey, n } from '../format';
import { useLoad, useThrottled } from '../hooks';
import { useLive } from '../live';
import { Link } from '../router';
import { useSession } from '../session';
import { Badge, Empty, Loading, Notice } from '../ui';

async function allCampaigns(signal: AbortSignal): Promise<Campaign[]> {
  const out: Campaign[] = [];
  let cursor: string | null = null;
  do {
    const p: Page<Campaign> = await api<Page<Campaign>>('/campaigns', { query: { limit: 500, cursor }, signal });
    out.push(...p.data);
    cursor = p.next_cursor;
  } while (cursor && out.length < 5000);
  return out.reverse();
}

export function Campaigns() {
  const { me } = useSession();
  const [view, setView] = useState<'list' | 'calendar'>('list');
  const loaded = useLoad(allCampaigns, []);
  const reload = useThrottled(loaded.reload, 1000);
  useLive(['campaign.status', 'campaign.state', 'campaign.progress'], reload);
  return (
    <section aria-labelledby="campaigns-title">
      <div className="page-head">
        <h1 id="campaigns-title">Campaigns</h1>
        <div className="actions">
          <div className="tabs" role="group" aria-label="View">
            <button type="button" aria-pressed={view === 'list'} onClick={() => setView('list')}>
              List
            </button>
            <button type="button" aria-pressed={view === 'calendar'} onClick={() => setView('calendar')}>
              Calendar
            </button>
          </div>
          <Link href="/campaigns/new" className="button primary">
            New campaign
          </Link>
        </div>
      </div>
      <Notice error={loaded.error} />
      {!loaded.data ? (
        <Loading />
      ) : loaded.data.length === 0 ? (
        <Empty>No campaign yet. A campaign sends one message to a filtered audience, paced over your devices.</Empty>
      ) : view === 'list' ? (
        <div className="table-wrap">
          <table className="table">
            <caption className="sr-only">Campaigns, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Status</th>
                <th scope="col">Mode</th>
                <th scope="col">Audience</th>
                <th scope="col">Starts</th>
                <th scope="col">Finished</th>
              </tr>
            </thead>
            <tbody>
              {loaded.data.map((c) => (
                <tr key={c.id}>
                  <td>
                    <Link href={`/campaigns/${c.id}`}>{c.name}</Link>
                  </td>
                  <td>
                    <Badge status={c.status} />
                  </td>
                  <td>{c.mode === 'pool' ? 'pool' : 'own leads'}</td>
                  <td>{n(c.audience_size)}</td>
                  <td>{c.starts_at ? dateTime(c.starts_at, me.time_zone) : c.started_at ? dateTime(c.started_at, me.time_zone) : 'when scheduled'}</td>
                  <td>{dateTime(c.completed_at, me.time_zone)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : (
        <Calendar campaigns={loaded.data} zone={me.time_zone} />
      )}
    </section>
  );
}

function Calendar({ campaigns, zone }: { campaigns: Campaign[]; zone: string }) {
  const [month, setMonth] = useState(() => {
    const d = new Date();
    return new Date(d.getFullYear(), d.getMonth(), 1);
  });
  const byDay = new Map<string, Campaign[]>();
  for (const c of campaigns) {
    const at = c.starts_at ?? c.started_at ?? c.created_at;
    const k = dayKey(new Date(at), zone);
    byDay.set(k, [...(byDay.get(k) ?? []), c]);
  }
  const first = new Date(month);
  const lead = (first.getDay() + 6) % 7; // weeks start on Monday
  const days = new Date(first.getFullYear(), first.getMonth() + 1, 0).getDate();
  const cells: (number | null)[] = [...Array<null>(lead).fill(null), ...Array.from({ length: days }, (_, i) => i + 1)];
  while (cells.length % 7) cells.push(null);
  const title = first.toLocaleDateString(undefined, { month: 'long', year: 'numeric' });
  const today = dayKey(new Date(), zone);
  return (
    <div className="card calendar">
      <div className="calendar-head">
        <button type="button" onClick={() => setMonth(new Date(first.getFullYear(), first.getMonth() - 1, 1))} aria-label="Previous month">
          ‹
        </button>
        <h2 aria-live="polite">{title}</h2>
        <button type="button" onClick={() => setMonth(new Date(first.getFullYear(), first.getMonth() + 1, 1))} aria-label="Next month">
          ›
        </button>
      </div>
      <table>
        <caption className="sr-only">Campaigns by start day, {title}</caption>
        <thead>
          <tr>
            {['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'].map((d) => (
              <th key={d} scope="col">
                {d}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {Array.from({ length: cells.length / 7 }, (_, w) => (
            <tr key={w}>
              {cells.slice(w * 7, w * 7 + 7).map((d, i) => {
                if (d === null) return <td key={i} className="blank" />;
                const k = `${first.getFullYear()}-${String(first.getMonth() + 1).padStart(2, '0')}-${String(d).padStart(2, '0')}`;
                return (
                  <td key={i} className={k === today ? 'today' : undefined}>
                    <span className="day">{d}</span>
                    {(byDay.get(k) ?? []).map((c) => (
                      <Link key={c.id} href={`/campaigns/${c.id}`} className={`cal-item cal-${c.status}`}>
                        {c.name}
                      </Link>
                    ))}
                  </td>
                );
              })}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
