/** What the engine is doing now: outbox depth, sends per minute, each device, the latest failures. */
import { useEffect, useState } from 'react';
import { advanceThroughput, api, type LiveFigures, type MonitoringView } from '../api';
import { dateTime, n, time } from '../format';
import { useInterval, useLoad } from '../hooks';
import { useLive } from '../live';
import { Link } from '../router';
import { useSession } from '../session';
import { Badge, Empty, Loading, Notice, Stat, ThroughputChart } from '../ui';

export function Monitoring() {
  const { me } = useSession();
  const loaded = useLoad((signal) => api<MonitoringView>('/monitoring', { signal }), []);
  const [view, setView] = useState<MonitoringView | null>(null);
  const [updated, setUpdated] = useState<string | null>(null);
  useEffect(() => {
    if (loaded.data) {
      setView(loaded.data);
      setUpdated(loaded.data.generated_at);
    }
  }, [loaded.data]);
  // The figures event moves the outbox and the chart every few seconds; the device table and the
  // failures are read again every 10 s and when a device changes state.
  useLive(['figures'], (d) => {
    const f = d as unknown as LiveFigures;
    setView((v) => (v ? { ...v, outbox: f.outbox, throughput: advanceThroughput(v.throughput, f) } : v));
    setUpdated(f.at);
  });
  useLive(['device.status', 'device.restricted'], loaded.reload);
  useInterval(loaded.reload, 10_000);

  const perMinute = view?.throughput.at(-2)?.sent ?? 0;
  return (
    <section aria-labelledby="monitoring-title">
      <div className="page-head">
        <h1 id="monitoring-title">Monitoring</h1>
        <p className="muted" aria-live="polite">
          {updated ? `Updated ${time(updated, me.time_zone)}` : ''}
        </p>
      </div>
      <Notice error={loaded.error} />
      {!view ? (
        <Loading />
      ) : (
        <>
          <div className="stats" aria-live="polite" aria-label="Outbox">
            <Stat label="Waiting to send" value={n(view.outbox.pending)} />
            <Stat label="Sending" value={n(view.outbox.sending)} />
            <Stat label="Held (paused)" value={n(view.outbox.held)} />
            <Stat label="Sent last minute" value={n(perMinute)} />
          </div>
          <div className="card">
            <h2>Messages per minute</h2>
            <ThroughputChart points={view.throughput} label="Messages sent per minute, last hour" />
          </div>
          <div className="card">
            <h2>Devices</h2>
            {view.devices.length === 0 ? (
              <Empty>No devices.</Empty>
            ) : (
              <div className="table-wrap">
                <table className="table">
                  <thead>
                    <tr>
                      <th scope="col">Device</th>
                      <th scope="col">State</th>
                      <th scope="col">Sent today</th>
                      <th scope="col">Failed today</th>
                      <th scope="col">Last seen</th>
                      <th scope="col">Last error</th>
                    </tr>
                  </thead>
                  <tbody>
                    {view.devices.map((d) => (
                      <tr key={d.id}>
                        <th scope="row">
                          {d.name}
                          <div className="muted mono">{d.phone ?? ''}</div>
                        </th>
                        <td>
                          <Badge status={d.state} />
                          {d.restricted_until && <div className="hint">until {dateTime(d.restricted_until, me.time_zone)}</div>}
                          {d.state === 'paused' && d.paused_until && <div className="hint">until {dateTime(d.paused_until, me.time_zone)}</div>}
                        </td>
                        <td>{n(d.sent_today)}</td>
                        <td className={d.failed_today > 0 ? 'bad' : undefined}>{n(d.failed_today)}</td>
                        <td>{dateTime(d.last_seen_at, me.time_zone)}</td>
                        <td>{d.last_error ? `${d.last_error.message ?? d.last_error.code ?? 'error'} (${dateTime(d.last_error.at, me.time_zone)})` : '–'}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </div>
          <div className="card">
            <h2>Recent errors</h2>
            {view.recent_errors.length === 0 ? (
              <Empty>No failed message.</Empty>
            ) : (
              <div className="table-wrap">
                <table className="table">
                  <thead>
                    <tr>
                      <th scope="col">When</th>
                      <th scope="col">Reason</th>
                      <th scope="col">Device</th>
                      <th scope="col">Lead</th>
                      <th scope="col">From</th>
                    </tr>
                  </thead>
                  <tbody>
                    {view.recent_errors.map((e) => (
                      <tr key={e.message_id}>
                        <td>{dateTime(e.at, me.time_zone)}</td>
                        <td>
                          {e.reason ?? '–'}
                          {e.code && <div className="hint mono">{e.code}</div>}
                        </td>
                        <td>{e.device_name ?? `#${e.device_id}`}</td>
                        <td>
                          {e.lead_name || '–'} <span className="mono muted">{e.phone}</span>
                        </td>
                        <td>{e.campaign_id ? <Link href={`/campaigns/${e.campaign_id}`}>campaign #{e.campaign_id}</Link> : e.enrollment_id ? 'a sequence' : '–'}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </div>
        </>
      )}
    </section>
  );
}
