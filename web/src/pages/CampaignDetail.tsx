/** One campaign as it runs: progress, per-device breakdown, failures, forecast, and its actions. */
import { useState } from 'react';
import { api, messageOf, type Campaign, type CampaignFailures, type CampaignStats, type Device, type Page, type Preview, type Summary } from '../api';
import { dateTime, n, pct } from '../format';
import { useInterval, useLoad, useThrottled } from '../hooks';
import { useLive } from '../live';
import { Link, navigate } from '../router';
import { useSession } from '../session';
import { Badge, Empty, Loading, Notice, Progress, Stat } from '../ui';
import { Bubble } from '../whatsapp';
import { ForecastCard } from './ForecastCard';

interface Detail {
  campaign: Campaign;
  stats: CampaignStats;
}

async function loadDetail(id: number, signal: AbortSignal): Promise<Detail> {
  const [campaign, stats] = await Promise.all([api<Campaign>(`/campaigns/${id}`, { signal }), api<CampaignStats>(`/campaigns/${id}/stats`, { signal })]);
  return { campaign, stats };
}

function parts(s: Summary) {
  const sentOnly = Math.max(0, s.sent - s.delivered);
  const deliveredOnly = Math.max(0, s.delivered - s.read);
  return [
    { value: s.read, tone: 'read', label: 'read' },
    { value: deliveredOnly, tone: 'delivered', label: 'delivered' },
    { value: sentOnly, tone: 'ok', label: 'sent' },
    { value: s.failed, tone: 'bad', label: 'failed' },
    { value: s.cancelled + s.other, tone: 'muted', label: 'cancelled or skipped' },
  ];
}

export function CampaignDetail({ id }: { id: number }) {
  const { me } = useSession();
  const loaded = useLoad((signal) => loadDetail(id, signal), [id]);
  const devices = useLoad((signal) => api<Page<Device>>('/devices', { query: { limit: 500 }, signal }), []);
  const preview = useLoad((signal) => api<Preview>(`/campaigns/${id}/preview`, { signal }).catch(() => null), [id]);
  const failures = useLoad((signal) => api<CampaignFailures>(`/campaigns/${id}/failures`, { query: { limit: 20 }, signal }).catch(() => null), [id]);
  const reload = useThrottled(() => {
    loaded.reload();
    failures.reload();
  }, 400);
  useLive(['campaign.progress', 'campaign.status', 'campaign.state', 'campaign.completed'], (d) => {
    if (Number(d.campaign_id ?? d.id) === id) reload();
  });
  const c = loaded.data?.campaign;
  const running = c !== undefined && (c.status === 'running' || c.status === 'scheduled');
  // Live events carry the changes; this slow poll only covers a dropped feed.
  useInterval(reload, running ? 5000 : null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const act = async (what: string, fn: () => Promise<unknown>) => {
    setError(null);
    setNotice(null);
    try {
      await fn();
      setNotice(what);
      loaded.reload();
    } catch (err) {
      setError(messageOf(err));
    }
  };

  if (!loaded.data) return loaded.error ? <Notice error={loaded.error} /> : <Loading />;
  const { campaign, stats } = loaded.data;
  const t = stats.totals;
  const total = Math.max(t.total, stats.audience_size ?? 0);
  const done = t.total - t.pending;
  const deviceName = (did: number) => devices.data?.data.find((d) => d.id === did)?.name ?? `Device #${did}`;
  const errors = failures.data?.data ?? [];
  const reasons = failures.data?.reasons ?? [];

  return (
    <section aria-labelledby="campaign-title">
      <p>
        <Link href="/campaigns">‹ Campaigns</Link>
      </p>
      <div className="page-head">
        <h1 id="campaign-title">
          {campaign.name} <Badge status={campaign.status} />
        </h1>
        <div className="actions">
          {(campaign.status === 'draft' || campaign.status === 'scheduled') && (
            <Link className="button" href={`/campaigns/${id}/edit`}>
              Edit
            </Link>
          )}
          {campaign.status === 'draft' && (
            <button type="button" className="primary" onClick={() => void act('Started.', () => api(`/campaigns/${id}/schedule`, { method: 'POST' }))}>
              Start
            </button>
          )}
          {(campaign.status === 'running' || campaign.status === 'scheduled') && (
            <button type="button" onClick={() => void act('Paused.', () => api(`/campaigns/${id}/pause`, { method: 'POST' }))}>
              Pause
            </button>
          )}
          {campaign.status === 'paused' && (
            <button type="button" className="primary" onClick={() => void act('Resumed.', () => api(`/campaigns/${id}/resume`, { method: 'POST' }))}>
              Resume
            </button>
          )}
          {t.failed > 0 && (
            <button type="button" onClick={() => void act('Failed messages are queued again.', () => api(`/campaigns/${id}/retry`, { method: 'POST', body: {} }))}>
              Retry failed
            </button>
          )}
          <button type="button" onClick={() => void act('Cloned.', async () => navigate(`/campaigns/${(await api<Campaign>(`/campaigns/${id}/clone`, { method: 'POST' })).id}/edit`))}>
            Clone
          </button>
          {['draft', 'completed', 'cancelled'].includes(campaign.status) && (
            <button
              type="button"
              className="danger"
              onClick={() => {
                if (confirm('Delete this campaign? Messages it sent stay in the history.')) void act('Deleted.', async () => {
                  await api(`/campaigns/${id}`, { method: 'DELETE' });
                  navigate('/campaigns');
                });
              }}
            >
              Delete
            </button>
          )}
          {['draft', 'scheduled', 'running', 'paused'].includes(campaign.status) && (
            <button
              type="button"
              className="danger"
              onClick={() => {
                if (confirm('Cancel this campaign? Its waiting messages are cancelled.')) void act('Cancelled.', () => api(`/campaigns/${id}/cancel`, { method: 'POST' }));
              }}
            >
              Cancel
            </button>
          )}
        </div>
      </div>
      <Notice error={error} />
      <Notice kind="success">{notice}</Notice>
      <div className="card">
        <h2>Progress</h2>
        <div className="stats" aria-live="polite" data-testid="campaign-progress">
          <Stat label="Audience" value={n(stats.audience_size)} />
          <Stat label="Done" value={`${pct(done, total)}%`} />
          <Stat label="Waiting" value={n(t.pending + stats.queued)} />
          <Stat label="Sent" value={n(t.sent)} />
          <Stat label="Delivered" value={n(t.delivered)} />
          <Stat label="Read" value={n(t.read)} />
          <Stat label="Failed" value={n(t.failed)} tone={t.failed > 0 ? 'bad' : undefined} />
        </div>
        <Progress value={done} max={total} label="Campaign progress" parts={parts(t)} />
        <p className="legend">
          <span className="key key-read" /> read <span className="key key-delivered" /> delivered <span className="key key-ok" /> sent <span className="key key-bad" /> failed <span className="key key-muted" /> cancelled or skipped
        </p>
        <dl className="kv inline-kv">
          <dt>Mode</dt>
          <dd>{campaign.mode === 'pool' ? 'pool' : 'own leads'}</dd>
          <dt>Starts</dt>
          <dd>{campaign.starts_at ? dateTime(campaign.starts_at, me.time_zone) : 'when started'}</dd>
          <dt>Started</dt>
          <dd>{dateTime(campaign.started_at, me.time_zone)}</dd>
          <dt>Finished</dt>
          <dd data-testid="campaign-completed">{dateTime(campaign.completed_at, me.time_zone)}</dd>
          {campaign.window && (
            <>
              <dt>Hours</dt>
              <dd>
                {campaign.window.start}–{campaign.window.end} {campaign.window.days?.join(' ')} ({campaign.window.time_zone})
              </dd>
            </>
          )}
        </dl>
      </div>
      <div className="grid-2">
        <div className="card">
          <h2>By device</h2>
          {stats.devices.length === 0 ? (
            <Empty>No message has been handed to a device yet.</Empty>
          ) : (
            <div className="table-wrap">
              <table className="table">
                <thead>
                  <tr>
                    <th scope="col">Device</th>
                    <th scope="col">Progress</th>
                    <th scope="col">Sent</th>
                    <th scope="col">Failed</th>
                    <th scope="col">Waiting</th>
                    <th scope="col">
                      <span className="sr-only">Retry</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {stats.devices.map((d) => (
                    <tr key={d.device_id}>
                      <th scope="row">{deviceName(d.device_id)}</th>
                      <td className="bar-cell">
                        <Progress value={d.total - d.pending} max={d.total} label={`${deviceName(d.device_id)} progress`} parts={parts(d)} />
                      </td>
                      <td>{n(d.sent)}</td>
                      <td className={d.failed > 0 ? 'bad' : undefined}>{n(d.failed)}</td>
                      <td>{n(d.pending)}</td>
                      <td>
                        {d.failed > 0 && (
                          <button type="button" className="small" onClick={() => void act('Failed messages are queued again.', () => api(`/campaigns/${id}/retry`, { method: 'POST', body: { device_id: d.device_id } }))}>
                            Retry
                          </button>
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </div>
        <ForecastCard campaignId={id} />
      </div>
      <div className="grid-2">
        <div className="card">
          <h2>Failures</h2>
          {errors.length === 0 ? (
            <Empty>No failures.</Empty>
          ) : (
            <>
              <table className="table">
                <caption className="sr-only">Failures by reason</caption>
                <thead>
                  <tr>
                    <th scope="col">Reason</th>
                    <th scope="col">Messages</th>
                  </tr>
                </thead>
                <tbody>
                  {reasons.map((r) => (
                    <tr key={r.code ?? ''}>
                      <td>
                        <strong>{r.code ?? 'failed'}</strong>
                        {r.example && <span className="hint"> · {r.example}</span>}
                      </td>
                      <td>{n(r.count)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              <h3>Latest</h3>
              <ul className="errors">
                {errors.map((e) => (
                  <li key={e.id}>
                    <strong>{e.error ?? e.error_code ?? 'failed'}</strong> · {e.lead_name || e.phone} · {e.device_name ?? deviceName(e.device_id)}
                    {e.failed_at && ` · ${dateTime(e.failed_at, me.time_zone)}`}
                  </li>
                ))}
              </ul>
            </>
          )}
        </div>
        <div className="card">
          <h2>Message</h2>
          {preview.data?.data[0] && <p className="hint">As {preview.data.data[0].name || preview.data.data[0].phone} receives it</p>}
          <Bubble text={preview.data?.data[0]?.text ?? campaign.body} media={campaign.media ? { type: campaign.media.type, caption: campaign.media.caption, name: campaign.media.filename } : null} />
        </div>
      </div>
    </section>
  );
}
