/** Today's numbers, live throughput, devices by state, and what is running right now. */
import { useState } from 'react';
import { api, type DashboardFigures } from '../api';
import { n } from '../format';
import { useLoad, useThrottled } from '../hooks';
import { useLive } from '../live';
import { Link } from '../router';
import { useSession } from '../session';
import { Empty, Loading, Notice, Progress, Stat, ThroughputChart } from '../ui';

const DEVICE_STATES = ['online', 'offline', 'restricted', 'paused', 'logged_out', 'unlinked'] as const;

export function Home() {
  const { me } = useSession();
  const [live, setLive] = useState<DashboardFigures | null>(null);
  const loaded = useLoad((signal) => api<DashboardFigures>('/dashboard', { signal }), []);
  const reload = useThrottled(loaded.reload, 1000);
  // `figures` carries the same numbers every few seconds; a campaign or device change reloads the
  // lists, which the figures may not carry.
  useLive(['figures'], (d) => setLive((prev) => ({ ...prev, ...(d as DashboardFigures) })));
  useLive(['campaign.progress', 'campaign.status', 'campaign.state', 'device.status'], reload);
  const f: DashboardFigures | undefined = loaded.data ? { ...loaded.data, ...live } : undefined;

  return (
    <section aria-labelledby="home-title">
      <div className="page-head">
        <h1 id="home-title">Good {greeting()}, {me.name || me.email.split('@')[0]}</h1>
        <p className="muted">Today in {me.time_zone}</p>
      </div>
      <Notice error={loaded.error} />
      {!f ? (
        loaded.loading && <Loading />
      ) : (
        <>
          <div className="stats" aria-live="polite" aria-label="Today's numbers">
            <Stat label="Sent" value={n(f.today?.sent ?? 0)} />
            <Stat label="Delivered" value={n(f.today?.delivered ?? 0)} />
            <Stat label="Read" value={n(f.today?.read ?? 0)} />
            <Stat label="Replies" value={n(f.today?.replies ?? 0)} tone="good" />
            <Stat label="Failed" value={n(f.today?.failed ?? 0)} tone={(f.today?.failed ?? 0) > 0 ? 'bad' : undefined} />
          </div>
          <div className="grid-2">
            <div className="card">
              <h2>Throughput</h2>
              <ThroughputChart points={f.throughput ?? []} label="Messages sent per minute" />
            </div>
            <div className="card">
              <h2>Devices</h2>
              <ul className="state-list" aria-live="polite">
                {DEVICE_STATES.map((s) => (
                  <li key={s}>
                    <span className={`dot dot-${s}`} aria-hidden="true" />
                    <span className="state-name">{s.replace('_', ' ')}</span>
                    <strong>{n(f.devices?.[s] ?? 0)}</strong>
                  </li>
                ))}
              </ul>
              <Link href="/devices">Manage devices</Link>
            </div>
          </div>
          <div className="grid-2">
            <div className="card">
              <h2>Running campaigns</h2>
              {(f.campaigns ?? []).length === 0 ? (
                <Empty>
                  Nothing running. <Link href="/campaigns/new">Create a campaign</Link>
                </Empty>
              ) : (
                <ul className="running">
                  {(f.campaigns ?? []).map((c) => {
                    const total = Number(c.total ?? c.audience_size ?? 0);
                    const done = Number(c.sent ?? 0) + Number(c.failed ?? 0);
                    return (
                      <li key={c.id}>
                        <Link href={`/campaigns/${c.id}`}>{c.name}</Link>
                        <span className="muted">
                          {n(done)} / {n(total)}
                        </span>
                        <Progress value={done} max={total} label={`${c.name} progress`} />
                      </li>
                    );
                  })}
                </ul>
              )}
            </div>
            <div className="card">
              <h2>Active sequences</h2>
              {(f.sequences ?? []).length === 0 ? (
                <Empty>
                  No active sequence. <Link href="/sequences">Sequences</Link>
                </Empty>
              ) : (
                <ul className="running">
                  {(f.sequences ?? []).map((s) => (
                    <li key={s.id}>
                      <Link href={`/sequences/${s.id}`}>{s.name}</Link>
                      <span className="muted">
                        {n(Number(s.active ?? 0))} active · {n(Number(s.completed ?? 0))} completed
                      </span>
                    </li>
                  ))}
                </ul>
              )}
            </div>
          </div>
        </>
      )}
    </section>
  );
}

function greeting(): string {
  const h = new Date().getHours();
  return h < 12 ? 'morning' : h < 18 ? 'afternoon' : 'evening';
}
