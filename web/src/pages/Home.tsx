/** Today's numbers, live throughput, devices by state, and what is running right now. */
import { useEffect, useState } from 'react';
import { advanceThroughput, api, type CampaignProgress, type DashboardView, type LiveFigures } from '../api';
import { n } from '../format';
import { useLoad, useThrottled } from '../hooks';
import { useLive } from '../live';
import { Link } from '../router';
import { useSession } from '../session';
import { Empty, Loading, Notice, Progress, Stat, ThroughputChart } from '../ui';

const DEVICE_STATES = ['online', 'offline', 'restricted', 'paused', 'logged_out', 'unlinked'] as const;

export function campaignDone(c: Pick<CampaignProgress, 'sent' | 'failed' | 'other'>): number {
  return c.sent + c.failed + c.other;
}

export function Home() {
  const { me } = useSession();
  const loaded = useLoad((signal) => api<DashboardView>('/dashboard', { signal }), []);
  const [view, setView] = useState<DashboardView | null>(null);
  useEffect(() => {
    if (loaded.data) setView(loaded.data);
  }, [loaded.data]);
  const reload = useThrottled(loaded.reload, 1500);
  // `figures` moves today's numbers and the chart on every few seconds; a campaign's progress event
  // carries its counts; a state change (started, finished) changes the lists, so they are read again.
  useLive(['figures'], (d) => {
    const f = d as unknown as LiveFigures;
    setView((v) => (v ? { ...v, today: f.today, devices: f.devices, outbox: f.outbox, throughput: advanceThroughput(v.throughput, f) } : v));
  });
  useLive(['campaign.progress'], (d) => {
    const id = Number(d.campaign_id);
    setView((v) => {
      if (!v) return v;
      if (!v.campaigns.some((c) => c.id === id)) {
        reload();
        return v;
      }
      return { ...v, campaigns: v.campaigns.map((c) => (c.id === id ? { ...c, ...(d as Partial<CampaignProgress>), id, name: c.name } : c)) };
    });
  });
  useLive(['campaign.state', 'device.status'], reload);

  return (
    <section aria-labelledby="home-title">
      <div className="page-head">
        <h1 id="home-title">
          Good {greeting(me.time_zone)}, {me.name || me.email.split('@')[0]}
        </h1>
        <p className="muted">Today in {me.time_zone}</p>
      </div>
      <Notice error={loaded.error} />
      {!view ? (
        <Loading />
      ) : (
        <>
          <div className="stats" aria-live="polite" aria-label="Today's numbers" data-testid="today">
            <Stat label="Sent" value={n(view.today.sent)} />
            <Stat label="Delivered" value={n(view.today.delivered)} />
            <Stat label="Read" value={n(view.today.read)} />
            <Stat label="Replies" value={n(view.today.replies)} tone="good" />
            <Stat label="Failed" value={n(view.today.failed)} tone={view.today.failed > 0 ? 'bad' : undefined} />
          </div>
          <div className="grid-2">
            <div className="card">
              <h2>Throughput</h2>
              <ThroughputChart points={view.throughput} label="Messages sent per minute" />
              <p className="muted">
                Outbox: {n(view.outbox.pending)} waiting · {n(view.outbox.sending)} sending · {n(view.outbox.held)} held
              </p>
            </div>
            <div className="card">
              <h2>Devices</h2>
              <ul className="state-list" aria-live="polite">
                {DEVICE_STATES.map((s) => (
                  <li key={s}>
                    <span className={`dot dot-${s}`} aria-hidden="true" />
                    <span className="state-name">{s.replace('_', ' ')}</span>
                    <strong>{n(view.devices[s] ?? 0)}</strong>
                  </li>
                ))}
              </ul>
              <Link href="/devices">Manage devices</Link>
            </div>
          </div>
          <div className="grid-2">
            <div className="card">
              <h2>Running campaigns</h2>
              {view.campaigns.length === 0 ? (
                <Empty>
                  Nothing running. <Link href="/campaigns/new">Create a campaign</Link>
                </Empty>
              ) : (
                <ul className="running">
                  {view.campaigns.map((c) => {
                    const total = Math.max(c.total, c.audience_size ?? 0);
                    return (
                      <li key={c.id}>
                        <Link href={`/campaigns/${c.id}`}>{c.name}</Link>
                        <span className="muted">
                          {c.status === 'paused' ? 'paused · ' : ''}
                          {n(campaignDone(c))} / {n(total)}
                        </span>
                        <Progress value={campaignDone(c)} max={total} label={`${c.name} progress`} />
                      </li>
                    );
                  })}
                </ul>
              )}
            </div>
            <div className="card">
              <h2>Active sequences</h2>
              {view.sequences.length === 0 ? (
                <Empty>
                  No active sequence. <Link href="/sequences">Sequences</Link>
                </Empty>
              ) : (
                <ul className="running">
                  {view.sequences.map((s) => (
                    <li key={s.id}>
                      <Link href={`/sequences/${s.id}`}>{s.name}</Link>
                      <span className="muted">
                        {n(s.active)} active · {n(s.completed)} completed · {n(s.exited)} exited
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

/** The part of the day where the user is (their zone, not the browser's). */
function greeting(zone: string): string {
  let h = new Date().getHours();
  try {
    h = Number(new Intl.DateTimeFormat('en-US', { hour: 'numeric', hourCycle: 'h23', timeZone: zone }).format(new Date()));
  } catch {
    // An unknown zone name: the browser's hour will do for a greeting.
  }
  return h < 12 ? 'morning' : h < 18 ? 'afternoon' : 'evening';
}
