/** The account and the team: profile, time zone, default country, opt-out words, API tokens, webhooks, members. */
import { useState, type FormEvent } from 'react';
import { api, messageOf, type ApiToken, type Device, type Member, type Page, type Webhook } from '../api';
import { dateTime } from '../format';
import { useLoad } from '../hooks';
import { useSession } from '../session';
import { Badge, Empty, Field, Loading, Notice } from '../ui';

const WEBHOOK_EVENTS = [
  'message.sent',
  'message.delivered',
  'message.read',
  'message.failed',
  'lead.replied',
  'lead.opted_out',
  'device.connected',
  'device.disconnected',
  'device.restricted',
  'device.logged_out',
  'campaign.started',
  'campaign.completed',
  'sequence.completed',
];

function zones(): string[] {
  try {
    return (Intl as unknown as { supportedValuesOf(k: string): string[] }).supportedValuesOf('timeZone');
  } catch {
    return ['UTC'];
  }
}

export function Settings() {
  const { me } = useSession();
  return (
    <section aria-labelledby="settings-title">
      <div className="page-head">
        <h1 id="settings-title">Settings</h1>
      </div>
      <div className="grid-2">
        <Profile />
        <OptOutWords />
      </div>
      <Password />
      <Tokens />
      {!me.team_member && <Webhooks />}
      {!me.team_member && <Members />}
    </section>
  );
}

function Profile() {
  const { me, refresh } = useSession();
  const [name, setName] = useState(me.name);
  const [zone, setZone] = useState(me.time_zone);
  const [country, setCountry] = useState(me.default_country ?? '');
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const all = zones();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setSaved(null);
    try {
      await api('/me', { method: 'PATCH', body: { name, time_zone: zone, default_country: country.trim() ? country.trim().toUpperCase() : null } });
      await refresh();
      setSaved('Saved.');
    } catch (err) {
      setError(messageOf(err));
    }
  };
  return (
    <form className="card" onSubmit={(e) => void submit(e)} aria-labelledby="profile-title">
      <h2 id="profile-title">Profile</h2>
      <Notice error={error} />
      <Notice kind="success">{saved}</Notice>
      <p className="muted">{me.email}</p>
      <Field label="Name">{(p) => <input {...p} maxLength={200} value={name} onChange={(e) => setName(e.target.value)} />}</Field>
      <Field label="Time zone" hint="today's numbers, send windows and sequence send times use it">
        {(p) => (
          <select {...p} value={zone} onChange={(e) => setZone(e.target.value)}>
            {(all.includes(zone) ? all : [zone, ...all]).map((z) => (
              <option key={z}>{z}</option>
            ))}
          </select>
        )}
      </Field>
      <Field label="Default country" hint="two letters, e.g. MY: national phone numbers are read as this country's">
        {(p) => <input {...p} maxLength={2} pattern="[A-Za-z]{2}" value={country} onChange={(e) => setCountry(e.target.value)} />}
      </Field>
      <button type="submit" className="primary">
        Save profile
      </button>
    </form>
  );
}

function OptOutWords() {
  const { me, refresh } = useSession();
  const [words, setWords] = useState((me.opt_out_words ?? []).join('\n'));
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const save = async (value: string[] | null) => {
    setError(null);
    setSaved(null);
    try {
      await api('/me', { method: 'PATCH', body: { opt_out_words: value } });
      await refresh();
      if (value === null) setWords('');
      setSaved(value === null ? 'Back to the default words.' : 'Saved.');
    } catch (err) {
      setError(messageOf(err));
    }
  };
  const list = words
    .split('\n')
    .map((w) => w.trim())
    .filter(Boolean);
  return (
    <form
      className="card"
      aria-labelledby="optout-title"
      onSubmit={(e) => {
        e.preventDefault();
        void save(list.length ? list : null);
      }}
    >
      <h2 id="optout-title">Opt-out words</h2>
      <Notice error={error} />
      <Notice kind="success">{saved}</Notice>
      <Field label="Replies that opt a lead out" hint={me.opt_out_words ? 'one per line; case and punctuation are ignored' : 'using the defaults (STOP, UNSUBSCRIBE, BERHENTI, …); one per line to use your own'}>
        {(p) => <textarea {...p} rows={6} value={words} onChange={(e) => setWords(e.target.value)} />}
      </Field>
      <div className="actions">
        <button type="submit" className="primary">
          Save words
        </button>
        <button type="button" onClick={() => void save(null)}>
          Use the defaults
        </button>
      </div>
    </form>
  );
}

function Tokens() {
  const { me } = useSession();
  const loaded = useLoad((signal) => api<Page<ApiToken>>('/tokens', { query: { limit: 100 }, signal }), []);
  const [name, setName] = useState('');
  const [created, setCreated] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const create = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      const t = await api<ApiToken & { token: string }>('/tokens', { method: 'POST', body: { name } });
      setCreated(t.token);
      setName('');
      loaded.reload();
    } catch (err) {
      setError(messageOf(err));
    }
  };
  const revoke = async (t: ApiToken) => {
    if (!confirm(`Revoke ${t.name}? Anything using it stops working at once.`)) return;
    try {
      await api(`/tokens/${t.id}`, { method: 'DELETE' });
      loaded.reload();
    } catch (err) {
      setError(messageOf(err));
    }
  };
  return (
    <div className="card">
      <h2>API tokens</h2>
      <Notice error={error ?? loaded.error} />
      {created && (
        <Notice kind="success">
          Your new token, shown only now: <code className="mono">{created}</code>. Use it as <code>Authorization: Bearer …</code>.
        </Notice>
      )}
      <form className="row" onSubmit={(e) => void create(e)}>
        <Field label="New token name">{(p) => <input {...p} required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />}</Field>
        <div className="row-button">
          <button type="submit" className="primary">
            Create token
          </button>
        </div>
      </form>
      {!loaded.data ? (
        <Loading />
      ) : loaded.data.data.length === 0 ? (
        <Empty>No token.</Empty>
      ) : (
        <div className="table-wrap">
          <table className="table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Starts with</th>
                <th scope="col">Created</th>
                <th scope="col">Last used</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {loaded.data.data.map((t) => (
                <tr key={t.id}>
                  <td>{t.name}</td>
                  <td className="mono">{t.prefix}…</td>
                  <td>{dateTime(t.created_at, me.time_zone)}</td>
                  <td>{dateTime(t.last_used_at, me.time_zone)}</td>
                  <td>
                    {t.revoked_at ? (
                      <Badge status="revoked" />
                    ) : (
                      <button type="button" className="small danger" onClick={() => void revoke(t)}>
                        Revoke
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
  );
}

function Webhooks() {
  const { me } = useSession();
  const loaded = useLoad((signal) => api<Page<Webhook>>('/webhooks', { query: { limit: 100 }, signal }), []);
  const [url, setUrl] = useState('');
  const [events, setEvents] = useState<string[]>(['message.failed', 'lead.replied']);
  const [secret, setSecret] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const act = async (fn: () => Promise<unknown>, done?: string) => {
    setError(null);
    setNotice(null);
    try {
      await fn();
      if (done) setNotice(done);
      loaded.reload();
    } catch (err) {
      setError(messageOf(err));
    }
  };
  const create = (e: FormEvent) => {
    e.preventDefault();
    void act(async () => {
      const w = await api<Webhook & { secret: string }>('/webhooks', { method: 'POST', body: { url: url.trim(), events } });
      setSecret(w.secret);
      setUrl('');
    });
  };
  return (
    <div className="card">
      <h2>Webhooks</h2>
      <Notice error={error ?? loaded.error} />
      <Notice kind="success">{notice}</Notice>
      {secret && (
        <Notice kind="success">
          Signing secret, shown only now: <code className="mono">{secret}</code>
        </Notice>
      )}
      <form onSubmit={create}>
        <Field label="Endpoint URL" hint="https://…; private and loopback addresses are refused">
          {(p) => <input {...p} type="url" required value={url} onChange={(e) => setUrl(e.target.value)} />}
        </Field>
        <fieldset className="plain">
          <legend>Events</legend>
          <div className="checks">
            {WEBHOOK_EVENTS.map((ev) => (
              <label key={ev} className="inline">
                <input type="checkbox" checked={events.includes(ev)} onChange={(e) => setEvents(e.target.checked ? [...events, ev] : events.filter((x) => x !== ev))} /> <span className="mono">{ev}</span>
              </label>
            ))}
          </div>
        </fieldset>
        <button type="submit" className="primary" disabled={events.length === 0}>
          Add webhook
        </button>
      </form>
      {loaded.data && loaded.data.data.length > 0 && (
        <div className="table-wrap">
          <table className="table">
            <thead>
              <tr>
                <th scope="col">URL</th>
                <th scope="col">Events</th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {loaded.data.data.map((w) => (
                <tr key={w.id}>
                  <td className="mono">
                    {w.url} {!w.active && <Badge status="paused" />}
                  </td>
                  <td>{w.events.join(', ')}</td>
                  <td>{dateTime(w.created_at, me.time_zone)}</td>
                  <td>
                    <div className="actions">
                      <button type="button" className="small" onClick={() => void act(() => api(`/webhooks/${w.id}/test`, { method: 'POST' }), 'A test event is queued.')}>
                        Test
                      </button>
                      <button type="button" className="small" onClick={() => void act(() => api(`/webhooks/${w.id}`, { method: 'PATCH', body: { active: !w.active } }))}>
                        {w.active ? 'Pause' : 'Resume'}
                      </button>
                      <button
                        type="button"
                        className="small danger"
                        onClick={() => {
                          if (confirm(`Delete the webhook to ${w.url}?`)) void act(() => api(`/webhooks/${w.id}`, { method: 'DELETE' }));
                        }}
                      >
                        Delete
                      </button>
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

function Members() {
  const { me } = useSession();
  const loaded = useLoad((signal) => api<Page<Member>>('/members', { query: { limit: 100 }, signal }), []);
  const devices = useLoad((signal) => api<Page<Device>>('/devices', { query: { limit: 500 }, signal }), []);
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [name, setName] = useState('');
  const [deviceIds, setDeviceIds] = useState<number[]>([]);
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
  const add = (e: FormEvent) => {
    e.preventDefault();
    void act(async () => {
      await api('/members', { method: 'POST', body: { email, password, name, time_zone: me.time_zone, device_ids: deviceIds } });
      setEmail('');
      setPassword('');
      setName('');
      setDeviceIds([]);
    });
  };
  const deviceName = (id: number) => devices.data?.data.find((d) => d.id === id)?.name ?? `#${id}`;
  return (
    <div className="card">
      <h2>Team members</h2>
      <p className="muted">A team member signs in with their own password and sees only the devices you give them, and those devices' leads and messages.</p>
      <Notice error={error ?? loaded.error} />
      <form onSubmit={add}>
        <div className="row">
          <Field label="Member email">{(p) => <input {...p} type="email" required value={email} onChange={(e) => setEmail(e.target.value)} />}</Field>
          <Field label="Member name">{(p) => <input {...p} value={name} onChange={(e) => setName(e.target.value)} />}</Field>
          <Field label="Initial password" hint="at least 10 characters">
            {(p) => <input {...p} type="password" autoComplete="new-password" required minLength={10} value={password} onChange={(e) => setPassword(e.target.value)} />}
          </Field>
        </div>
        {devices.data && devices.data.data.length > 0 && (
          <fieldset className="plain">
            <legend>Their devices</legend>
            <div className="checks">
              {devices.data.data.map((d) => (
                <label key={d.id} className="inline">
                  <input type="checkbox" checked={deviceIds.includes(d.id)} onChange={(e) => setDeviceIds(e.target.checked ? [...deviceIds, d.id] : deviceIds.filter((x) => x !== d.id))} /> {d.name}
                </label>
              ))}
            </div>
          </fieldset>
        )}
        <button type="submit" className="primary">
          Add member
        </button>
      </form>
      {loaded.data && loaded.data.data.length > 0 && (
        <div className="table-wrap">
          <table className="table">
            <thead>
              <tr>
                <th scope="col">Member</th>
                <th scope="col">Devices</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {loaded.data.data.map((m) => (
                <tr key={m.id}>
                  <td>
                    {m.name || m.email} <span className="muted">{m.email}</span> {m.disabled_at && <Badge status="disabled" />}
                  </td>
                  <td>{m.device_ids.length ? m.device_ids.map(deviceName).join(', ') : <span className="muted">none</span>}</td>
                  <td>
                    <div className="actions">
                      <button type="button" className="small" onClick={() => void act(() => api(`/members/${m.id}`, { method: 'PATCH', body: { disabled: !m.disabled_at } }))}>
                        {m.disabled_at ? 'Enable' : 'Disable'}
                      </button>
                      <button
                        type="button"
                        className="small danger"
                        onClick={() => {
                          if (confirm(`Remove ${m.email}?`)) void act(() => api(`/members/${m.id}`, { method: 'DELETE' }));
                        }}
                      >
                        Remove
                      </button>
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

function Password() {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setSaved(null);
    try {
      await api('/me/password', { method: 'POST', body: { current_password: current, new_password: next } });
      setCurrent('');
      setNext('');
      setSaved('Password changed; your other sessions are signed out.');
    } catch (err) {
      setError(messageOf(err));
    }
  };
  return (
    <form className="card" onSubmit={(e) => void submit(e)} aria-labelledby="password-title">
      <h2 id="password-title">Password</h2>
      <Notice error={error} />
      <Notice kind="success">{saved}</Notice>
      <div className="row">
        <Field label="Current password">{(p) => <input {...p} type="password" autoComplete="current-password" required value={current} onChange={(e) => setCurrent(e.target.value)} />}</Field>
        <Field label="New password" hint="at least 10 characters">
          {(p) => <input {...p} type="password" autoComplete="new-password" required minLength={10} value={next} onChange={(e) => setNext(e.target.value)} />}
        </Field>
        <div className="row-button">
          <button type="submit" className="primary">
            Change password
          </button>
        </div>
      </div>
    </form>
  );
}
