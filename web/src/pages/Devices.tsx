/** Device cards with their pacing, quotas and today's count; adding and linking one; its actions. */
import { useEffect, useState, type FormEvent } from 'react';
import { api, messageOf, type Device, type DeviceStats, type LinkState, type Page } from '../api';
import { dateTime, ms, n } from '../format';
import { useInterval, useLoad, useThrottled } from '../hooks';
import { useLive } from '../live';
import { useSession } from '../session';
import { Badge, Dialog, Empty, Field, Loading, Notice } from '../ui';

async function loadDevices(signal: AbortSignal): Promise<{ devices: Device[]; stats: Record<number, DeviceStats> }> {
  const devices: Device[] = [];
  let cursor: string | null = null;
  do {
    const p: Page<Device> = await api<Page<Device>>('/devices', { query: { limit: 500, cursor }, signal });
    devices.push(...p.data);
    cursor = p.next_cursor;
  } while (cursor);
  const stats: Record<number, DeviceStats> = {};
  await Promise.all(
    devices.map(async (d) => {
      try {
        stats[d.id] = await api<DeviceStats>(`/devices/${d.id}/stats`, { signal });
      } catch {
        // A card without figures is still useful; the error shows on the card as dashes.
      }
    }),
  );
  return { devices, stats };
}

function paused(d: Device): boolean {
  return d.paused_until !== null && new Date(d.paused_until).getTime() > Date.now();
}

export function Devices() {
  const { me } = useSession();
  const loaded = useLoad(loadDevices, []);
  const reload = useThrottled(loaded.reload, 1000);
  // The engine announces a status change before it writes it (it batches its writes), so a
  // reload right after an event may still read the old status: the latest event's status wins.
  const [liveStatus, setLiveStatus] = useState<Record<number, string>>({});
  useLive(['device.status'], (d) => {
    if (typeof d.status === 'string') setLiveStatus((m) => ({ ...m, [Number(d.device_id)]: d.status as string }));
    reload();
  });
  useLive(['device.link', 'device.restricted'], reload);
  const [adding, setAdding] = useState(false);
  const [linking, setLinking] = useState<Device | null>(null);
  const [editing, setEditing] = useState<Device | null>(null);
  const [error, setError] = useState<string | null>(null);

  const act = async (fn: () => Promise<unknown>) => {
    setError(null);
    try {
      await fn();
      loaded.reload();
    } catch (err) {
      setError(messageOf(err));
    }
  };

  return (
    <section aria-labelledby="devices-title">
      <div className="page-head">
        <h1 id="devices-title">Devices</h1>
        <button type="button" className="primary" onClick={() => setAdding(true)}>
          Add device
        </button>
      </div>
      <Notice error={error ?? loaded.error} />
      {!loaded.data ? (
        <Loading />
      ) : loaded.data.devices.length === 0 ? (
        <Empty>No devices yet. Add one and link it to a WhatsApp number by scanning its QR code.</Empty>
      ) : (
        <ul className="cards" aria-label="Devices">
          {loaded.data.devices.map((row) => {
            const d = liveStatus[row.id] ? { ...row, status: liveStatus[row.id]! } : row;
            const s = loaded.data!.stats[d.id];
            return (
              <li key={d.id} className="card device-card" aria-label={d.name}>
                <div className="card-head">
                  <h2>{d.name}</h2>
                  <Badge status={paused(d) ? 'paused' : d.linked ? d.status : 'unlinked'} />
                </div>
                <dl className="kv">
                  <dt>Phone</dt>
                  <dd>{d.phone ?? '–'}</dd>
                  <dt>Pacing</dt>
                  <dd>
                    {ms(d.min_delay_ms)} – {ms(d.max_delay_ms)}
                  </dd>
                  <dt>Quotas</dt>
                  <dd>
                    {d.hourly_limit ? `${n(d.hourly_limit)}/h` : 'no hourly cap'} · {d.daily_limit ? `${n(d.daily_limit)}/day` : 'no daily cap'}
                  </dd>
                  <dt>Sent today</dt>
                  <dd>
                    <strong>{n(s?.sent_today)}</strong>
                    {s && s.failed_today > 0 && <span className="bad"> · {n(s.failed_today)} failed</span>}
                  </dd>
                  <dt>Waiting</dt>
                  <dd>{n(s?.pending)}</dd>
                  <dt>Leads</dt>
                  <dd>{n(s?.leads)}</dd>
                  {paused(d) && (
                    <>
                      <dt>Paused until</dt>
                      <dd>
                        {dateTime(d.paused_until, me.time_zone)}
                        {d.pause_reason ? ` (${d.pause_reason})` : ''}
                      </dd>
                    </>
                  )}
                  <dt>Last seen</dt>
                  <dd>{dateTime(d.last_seen_at, me.time_zone)}</dd>
                </dl>
                <div className="actions">
                  {!d.linked || d.status === 'logged_out' ? (
                    <button type="button" className="primary" onClick={() => setLinking(d)}>
                      Link
                    </button>
                  ) : (
                    <button
                      type="button"
                      onClick={() => {
                        if (confirm(`Log ${d.name} out of its WhatsApp account? Its messages wait until it is linked again.`)) void act(() => api(`/devices/${d.id}/logout`, { method: 'POST' }));
                      }}
                    >
                      Log out
                    </button>
                  )}
                  {paused(d) ? (
                    <button type="button" onClick={() => void act(() => api(`/devices/${d.id}/resume`, { method: 'POST' }))}>
                      Resume
                    </button>
                  ) : (
                    <button type="button" onClick={() => void act(() => api(`/devices/${d.id}/pause`, { method: 'POST', body: { reason: 'paused from the dashboard' } }))}>
                      Pause
                    </button>
                  )}
                  <button type="button" onClick={() => setEditing(d)}>
                    Edit limits
                  </button>
                  <button
                    type="button"
                    className="danger"
                    onClick={() => {
                      if (confirm(`Delete ${d.name}? Its waiting messages are cancelled and its leads go back to the shared pool.`)) void act(() => api(`/devices/${d.id}`, { method: 'DELETE' }));
                    }}
                  >
                    Delete
                  </button>
                </div>
              </li>
            );
          })}
        </ul>
      )}
      <Dialog title="Add a device" open={adding} onClose={() => setAdding(false)}>
        <AddDevice
          onCreated={(d) => {
            setAdding(false);
            loaded.reload();
            setLinking(d);
          }}
        />
      </Dialog>
      <Dialog title={linking ? `Link ${linking.name}` : 'Link'} open={linking !== null} onClose={() => { setLinking(null); loaded.reload(); }}>
        {linking && <LinkDevice device={linking} onLinked={() => loaded.reload()} />}
      </Dialog>
      <Dialog title={editing ? `Limits of ${editing.name}` : 'Limits'} open={editing !== null} onClose={() => setEditing(null)}>
        {editing && (
          <EditLimits
            device={editing}
            onSaved={() => {
              setEditing(null);
              loaded.reload();
            }}
          />
        )}
      </Dialog>
    </section>
  );
}

function AddDevice({ onCreated }: { onCreated: (d: Device) => void }) {
  const [name, setName] = useState('');
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      // Created unlinked: it is linked next, by QR code or pairing code.
      onCreated(await api<Device>('/devices', { method: 'POST', body: { name, linked: false } }));
    } catch (err) {
      setError(messageOf(err));
    }
  };
  return (
    <form onSubmit={(e) => void submit(e)}>
      <Notice error={error} />
      <Field label="Device name" hint="e.g. Sales 1">
        {(p) => <input {...p} required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />}
      </Field>
      <button type="submit" className="primary">
        Add and link
      </button>
    </form>
  );
}

function LinkDevice({ device, onLinked }: { device: Device; onLinked: () => void }) {
  const [state, setState] = useState<LinkState | null>(null);
  const [method, setMethod] = useState<'qr' | 'pairing_code'>('qr');
  const [phone, setPhone] = useState('');
  const [error, setError] = useState<string | null>(null);

  const start = async (m: 'qr' | 'pairing_code') => {
    setError(null);
    try {
      setState(await api<LinkState>(`/devices/${device.id}/link`, { method: 'POST', body: m === 'qr' ? { method: 'qr' } : { method: 'pairing_code', phone } }));
    } catch (err) {
      setError(messageOf(err));
    }
  };

  useEffect(() => {
    void start('qr');
    // Leaving the dialog before the scan cancels the link, so no QR keeps refreshing unseen.
    return () => {
      void api(`/devices/${device.id}/link`, { method: 'GET' })
        .then((s) => {
          const st = (s as LinkState).state;
          if (st === 'starting' || st === 'waiting_for_scan' || st === 'waiting_for_code') return api(`/devices/${device.id}/link`, { method: 'DELETE' });
          return null;
        })
        .catch(() => undefined);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [device.id]);

  const apply = (s: LinkState) => {
    setState((prev) => {
      // An event too big for the live channel comes without its SVG: keep asking GET for it.
      if (s.qr_svg === null && s.qr !== null) {
        void api<LinkState>(`/devices/${device.id}/link`).then(setState, () => undefined);
        return prev ? { ...s, qr_svg: prev.qr === s.qr ? prev.qr_svg : null } : s;
      }
      return s;
    });
    if (s.state === 'linked') onLinked();
  };
  useLive(['device.link'], (d) => {
    if (Number(d.device_id) === device.id) apply(d as unknown as LinkState);
  });
  // The live feed is the fast path; this poll covers a dropped connection.
  const waiting = state !== null && state.state !== 'linked' && state.state !== 'failed' && state.state !== 'expired';
  useInterval(() => void api<LinkState>(`/devices/${device.id}/link`).then(apply, () => undefined), waiting ? 3000 : null);

  return (
    <div className="link">
      <Notice error={error} />
      <div className="tabs" role="group" aria-label="How to link">
        <button type="button" aria-pressed={method === 'qr'} onClick={() => { setMethod('qr'); void start('qr'); }}>
          QR code
        </button>
        <button type="button" aria-pressed={method === 'pairing_code'} onClick={() => setMethod('pairing_code')}>
          Pairing code
        </button>
      </div>
      {method === 'pairing_code' && state?.method !== 'pairing_code' && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void start('pairing_code');
          }}
        >
          <Field label="Phone number" hint="the full number with its country code, e.g. +60123456789">
            {(p) => <input {...p} type="tel" required value={phone} onChange={(e) => setPhone(e.target.value)} />}
          </Field>
          <button type="submit" className="primary">
            Get a pairing code
          </button>
        </form>
      )}
      <div className="link-state" aria-live="polite">
        {method === 'pairing_code' && state?.method !== 'pairing_code' && state?.state !== 'linked' ? null : !state ? (
          <Loading what="Starting" />
        ) : state.state === 'linked' ? (
          <Notice kind="success">Linked{device.phone ? ` to ${device.phone}` : ''}. The device goes online in a moment.</Notice>
        ) : state.state === 'failed' || state.state === 'expired' ? (
          <>
            <Notice error={state.error?.message ?? (state.state === 'expired' ? 'The code expired before it was used.' : 'Linking failed.')} />
            <button type="button" onClick={() => void start(method)}>
              Try again
            </button>
          </>
        ) : state.method === 'pairing_code' && state.pairing_code ? (
          <div className="pairing">
            <p>On the phone: WhatsApp › Linked devices › Link with phone number instead, then type</p>
            <p className="code" data-testid="pairing-code">
              {state.pairing_code}
            </p>
          </div>
        ) : state.qr_svg ? (
          <div className="qr-wrap">
            {/* The server renders the QR code; it is an SVG document of its own making, not user input. */}
            <div className="qr" role="img" aria-label="QR code to scan with WhatsApp" data-testid="link-qr" dangerouslySetInnerHTML={{ __html: state.qr_svg }} />
            <p>On the phone: WhatsApp › Settings › Linked devices › Link a device, and scan this code. It refreshes by itself.</p>
          </div>
        ) : (
          <Loading what="Waiting for the code" />
        )}
      </div>
    </div>
  );
}

function EditLimits({ device, onSaved }: { device: Device; onSaved: () => void }) {
  const [minS, setMinS] = useState(String(device.min_delay_ms / 1000));
  const [maxS, setMaxS] = useState(String(device.max_delay_ms / 1000));
  const [hourly, setHourly] = useState(device.hourly_limit === null ? '' : String(device.hourly_limit));
  const [daily, setDaily] = useState(device.daily_limit === null ? '' : String(device.daily_limit));
  const [name, setName] = useState(device.name);
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await api(`/devices/${device.id}`, {
        method: 'PATCH',
        body: {
          name,
          min_delay_ms: Math.round(Number(minS) * 1000),
          max_delay_ms: Math.round(Number(maxS) * 1000),
          hourly_limit: hourly === '' ? null : Number(hourly),
          daily_limit: daily === '' ? null : Number(daily),
        },
      });
      onSaved();
    } catch (err) {
      setError(messageOf(err));
    }
  };
  return (
    <form onSubmit={(e) => void submit(e)}>
      <Notice error={error} />
      <Field label="Name">{(p) => <input {...p} required value={name} onChange={(e) => setName(e.target.value)} />}</Field>
      <div className="row">
        <Field label="Shortest gap (s)">{(p) => <input {...p} type="number" min={0} step="0.1" required value={minS} onChange={(e) => setMinS(e.target.value)} />}</Field>
        <Field label="Longest gap (s)">{(p) => <input {...p} type="number" min={0} step="0.1" required value={maxS} onChange={(e) => setMaxS(e.target.value)} />}</Field>
      </div>
      <div className="row">
        <Field label="Per hour" hint="empty: no cap">{(p) => <input {...p} type="number" min={1} value={hourly} onChange={(e) => setHourly(e.target.value)} />}</Field>
        <Field label="Per day" hint="empty: no cap">{(p) => <input {...p} type="number" min={1} value={daily} onChange={(e) => setDaily(e.target.value)} />}</Field>
      </div>
      <button type="submit" className="primary">
        Save
      </button>
    </form>
  );
}
