/**
 * Create or edit a campaign: message, audience, timing, pacing; a live WhatsApp-style preview of the
 * body as a sample lead will receive it, the audience size as you narrow it, and (once saved) the
 * forecast finish time.
 */
import { useEffect, useState, type FormEvent } from 'react';
import { api, messageOf, type Campaign, type Device, type Lead, type Page, type Preview } from '../api';
import { csv, n } from '../format';
import { useLoad } from '../hooks';
import { navigate } from '../router';
import { useSession } from '../session';
import { Field, Loading, Notice } from '../ui';
import { Bubble } from '../whatsapp';
import { ForecastCard } from './ForecastCard';
import { isoToWall, wallToIso } from '../zone';

const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;

interface Form {
  name: string;
  body: string;
  mediaType: '' | 'image' | 'video' | 'document';
  mediaUrl: string;
  mediaId: number | null;
  caption: string;
  niches: string;
  statuses: string;
  triggers: string;
  deviceIds: number[];
  mode: 'owned' | 'pool';
  startsAt: string;
  windowOn: boolean;
  windowStart: string;
  windowEnd: string;
  days: string[];
  delayOn: boolean;
  delayMin: string;
  delayMax: string;
  hourlyQuota: string;
  dailyQuota: string;
  dailyLimit: string;
}

function formOf(c: Campaign | undefined, zone: string): Form {
  return {
    name: c?.name ?? '',
    body: c?.body ?? 'Hi {first_name:there}, ',
    mediaType: (c?.media?.type as Form['mediaType']) ?? '',
    mediaUrl: c?.media?.url ?? '',
    mediaId: c?.media?.media_id ?? null,
    caption: c?.media?.caption ?? '',
    niches: (c?.audience.niches ?? []).join(', '),
    statuses: (c?.audience.statuses ?? []).join(', '),
    triggers: (c?.audience.triggers ?? []).join(', '),
    deviceIds: c?.audience.device_ids ?? [],
    mode: c?.mode ?? 'owned',
    startsAt: c?.starts_at ? isoToWall(c.starts_at, zone) : '',
    windowOn: !!c?.window,
    windowStart: c?.window?.start ?? '09:00',
    windowEnd: c?.window?.end ?? '18:00',
    days: c?.window?.days ?? [...DAYS],
    delayOn: !!c?.delay,
    delayMin: String(c?.delay?.min_seconds ?? 20),
    delayMax: String(c?.delay?.max_seconds ?? 60),
    hourlyQuota: c?.device_hourly_quota ? String(c.device_hourly_quota) : '',
    dailyQuota: c?.device_daily_quota ? String(c.device_daily_quota) : '',
    dailyLimit: c?.daily_limit ? String(c.daily_limit) : '',
  };
}

function bodyOf(f: Form, zone: string) {
  const num = (s: string) => (s.trim() === '' ? null : Number(s));
  const media = f.mediaType
    ? { type: f.mediaType, ...(f.mediaId ? { media_id: f.mediaId } : { url: f.mediaUrl.trim() }), ...(f.caption ? { caption: f.caption } : {}) }
    : null;
  return {
    name: f.name.trim(),
    body: f.body,
    media,
    audience: {
      niches: csv(f.niches),
      statuses: csv(f.statuses),
      triggers: csv(f.triggers),
      device_ids: f.mode === 'pool' ? [] : f.deviceIds,
    },
    mode: f.mode,
    starts_at: f.startsAt ? wallToIso(f.startsAt, zone) : null,
    window: f.windowOn ? { start: f.windowStart, end: f.windowEnd, days: f.days, time_zone: zone, ...(f.windowEnd < f.windowStart ? { overnight: true } : {}) } : null,
    delay: f.delayOn ? { min_seconds: Number(f.delayMin), max_seconds: Number(f.delayMax) } : null,
    ...(f.mode === 'pool' ? { device_hourly_quota: num(f.hourlyQuota), device_daily_quota: num(f.dailyQuota), daily_limit: num(f.dailyLimit) } : {}),
  };
}

/** The audience's exact size (GET /leads/count) and a few of its leads to preview the message with. */
async function audienceSize(f: Form, signal: AbortSignal): Promise<{ count: number; sample: Lead[] }> {
  // An owned campaign goes to leads that have a device, a pool campaign to those without one.
  const query = { niche: csv(f.niches), status: csv(f.statuses), trigger: csv(f.triggers), device_id: f.mode === 'pool' ? [] : f.deviceIds, pool: f.mode === 'pool' ? 'true' : 'false', opted_out: 'false' };
  const [counted, first] = await Promise.all([
    api<{ count: number }>('/leads/count', { query, signal }),
    api<Page<Lead>>('/leads', { query: { ...query, limit: 20 }, signal }),
  ]);
  return { count: counted.count, sample: first.data };
}

export function CampaignEditor({ id }: { id?: number }) {
  const { me } = useSession();
  const existing = useLoad((signal) => (id ? api<Campaign>(`/campaigns/${id}`, { signal }) : Promise.resolve(undefined)), [id]);
  const devices = useLoad((signal) => api<Page<Device>>('/devices', { query: { limit: 500 }, signal }), []);
  const [form, setForm] = useState<Form | null>(id ? null : formOf(undefined, me.time_zone));
  useEffect(() => {
    if (existing.data) setForm(formOf(existing.data, me.time_zone));
  }, [existing.data, me.time_zone]);
  if (!form) return existing.error ? <Notice error={existing.error} /> : <Loading />;
  return <Editor id={id} form={form} setForm={setForm} devices={devices.data?.data ?? []} existing={existing.data} />;
}

function Editor({ id, form, setForm, devices, existing }: { id: number | undefined; form: Form; setForm: (f: Form) => void; devices: Device[]; existing: Campaign | undefined }) {
  const { me } = useSession();
  const set = <K extends keyof Form>(k: K, v: Form[K]) => setForm({ ...form, [k]: v });
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [sampleId, setSampleId] = useState<number | null>(null);
  const [preview, setPreview] = useState<{ text: string | null; error: string | null }>({ text: null, error: null });
  const [audience, setAudience] = useState<{ count: number; sample: Lead[] } | null>(null);
  const [uploading, setUploading] = useState(false);

  // The audience as it is narrowed: recounted a moment after the last change.
  const audienceKey = JSON.stringify([form.niches, form.statuses, form.triggers, form.deviceIds, form.mode]);
  useEffect(() => {
    const ctl = new AbortController();
    const t = setTimeout(() => void audienceSize(form, ctl.signal).then(setAudience, () => undefined), 300);
    return () => {
      clearTimeout(t);
      ctl.abort();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [audienceKey]);

  // The preview is the server's own rendering (same template engine, same spintax choices).
  const sample = audience?.sample.find((l) => l.id === sampleId) ?? audience?.sample[0];
  useEffect(() => {
    const ctl = new AbortController();
    const t = setTimeout(() => {
      if (!form.body.trim()) return setPreview({ text: '', error: null });
      api<Preview>('/campaigns/preview', { method: 'POST', body: { body: form.body, ...(sample ? { lead_ids: [sample.id] } : {}) }, signal: ctl.signal }).then(
        (p) => setPreview({ text: p.data[0]?.text ?? form.body, error: null }),
        (err: unknown) => {
          if (!ctl.signal.aborted) setPreview((prev) => ({ text: prev.text, error: messageOf(err) }));
        },
      );
    }, 250);
    return () => {
      clearTimeout(t);
      ctl.abort();
    };
  }, [form.body, sample?.id]);

  const upload = async (file: File) => {
    setUploading(true);
    setError(null);
    try {
      const m = await api<{ id: number; kind: Form['mediaType'] }>('/media', { method: 'POST', raw: { data: file, type: file.type || 'application/octet-stream' }, query: { filename: file.name } });
      setForm({ ...form, mediaId: m.id, mediaType: m.kind, mediaUrl: '' });
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setUploading(false);
    }
  };

  const save = async (start: boolean) => {
    setBusy(true);
    setError(null);
    try {
      const body = bodyOf(form, me.time_zone);
      let c: Campaign;
      if (id) {
        c = await api<Campaign>(`/campaigns/${id}`, { method: 'PATCH', body });
        if (start && c.status === 'draft') c = await api<Campaign>(`/campaigns/${id}/schedule`, { method: 'POST' });
      } else {
        c = await api<Campaign>('/campaigns', { method: 'POST', body: { ...body, schedule: start } });
      }
      navigate(`/campaigns/${c.id}`);
    } catch (err) {
      setError(messageOf(err));
      setBusy(false);
    }
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void save(true);
  };

  const editable = !existing || existing.status === 'draft' || existing.status === 'scheduled';
  return (
    <section aria-labelledby="editor-title">
      <div className="page-head">
        <h1 id="editor-title">{id ? `Edit ${existing?.name ?? 'campaign'}` : 'New campaign'}</h1>
      </div>
      {!editable && <Notice kind="info">A {existing?.status} campaign cannot change; clone it to send it again.</Notice>}
      <form className="editor" onSubmit={submit}>
        <div className="editor-main">
          <Notice error={error} />
          <fieldset className="card">
            <legend>Message</legend>
            <Field label="Campaign name">{(p) => <input {...p} name="name" required maxLength={200} value={form.name} onChange={(e) => set('name', e.target.value)} />}</Field>
            <Field label="Message" hint="{name}, {first_name:there} (with a fallback), any imported column such as {city}; {Hi|Hello} picks one per lead; *bold* _italic_ ~strike~ ```mono```" error={preview.error}>
              {(p) => <textarea {...p} name="body" required rows={6} maxLength={4096} value={form.body} onChange={(e) => set('body', e.target.value)} />}
            </Field>
            <div className="row">
              <Field label="Attachment">
                {(p) => (
                  <select {...p} value={form.mediaType} onChange={(e) => set('mediaType', e.target.value as Form['mediaType'])}>
                    <option value="">None</option>
                    <option value="image">Image</option>
                    <option value="video">Video</option>
                    <option value="document">Document</option>
                  </select>
                )}
              </Field>
              {form.mediaType && (
                <Field label="Upload a file" hint={form.mediaId ? `uploaded (#${form.mediaId})` : 'or give a URL below'}>
                  {(p) => <input {...p} type="file" disabled={uploading} onChange={(e) => e.target.files?.[0] && void upload(e.target.files[0])} />}
                </Field>
              )}
            </div>
            {form.mediaType && !form.mediaId && (
              <Field label="Media URL" hint="https://…; fetched and checked when the campaign is scheduled">
                {(p) => <input {...p} type="url" value={form.mediaUrl} onChange={(e) => set('mediaUrl', e.target.value)} />}
              </Field>
            )}
            {form.mediaType && <Field label="Caption">{(p) => <input {...p} value={form.caption} onChange={(e) => set('caption', e.target.value)} />}</Field>}
          </fieldset>
          <fieldset className="card">
            <legend>Audience</legend>
            <div className="row">
              <Field label="Mode">
                {(p) => (
                  <select {...p} value={form.mode} onChange={(e) => set('mode', e.target.value as Form['mode'])}>
                    <option value="owned">Each device sends to its own leads</option>
                    <option value="pool">Pool: devices share the shared-pool leads</option>
                  </select>
                )}
              </Field>
            </div>
            <div className="row">
              <Field label="Niches" hint="any of, comma-separated; empty: all">{(p) => <input {...p} value={form.niches} onChange={(e) => set('niches', e.target.value)} />}</Field>
              <Field label="Statuses" hint="any of">{(p) => <input {...p} value={form.statuses} onChange={(e) => set('statuses', e.target.value)} />}</Field>
              <Field label="Triggers" hint="any of">{(p) => <input {...p} value={form.triggers} onChange={(e) => set('triggers', e.target.value)} />}</Field>
            </div>
            {devices.length > 0 && form.mode === 'owned' && (
              <fieldset className="plain">
                <legend>Devices (none ticked: all)</legend>
                <div className="checks">
                  {devices.map((d) => (
                    <label key={d.id} className="inline">
                      <input
                        type="checkbox"
                        checked={form.deviceIds.includes(d.id)}
                        onChange={(e) => set('deviceIds', e.target.checked ? [...form.deviceIds, d.id] : form.deviceIds.filter((x) => x !== d.id))}
                      />{' '}
                      {d.name}
                    </label>
                  ))}
                </div>
              </fieldset>
            )}
            <p className="audience-size" aria-live="polite" data-testid="audience-size">
              Audience: <strong>{audience ? n(audience.count) : '…'}</strong> leads (opted-out leads are never sent to)
            </p>
          </fieldset>
          <fieldset className="card">
            <legend>When</legend>
            <Field label={`Start (${me.time_zone})`} hint="empty: as soon as it is started">
              {(p) => <input {...p} type="datetime-local" value={form.startsAt} onChange={(e) => set('startsAt', e.target.value)} />}
            </Field>
            <label className="inline">
              <input type="checkbox" checked={form.windowOn} onChange={(e) => set('windowOn', e.target.checked)} /> Send only within daily hours
            </label>
            {form.windowOn && (
              <>
                <div className="row">
                  <Field label="From">{(p) => <input {...p} type="time" value={form.windowStart} onChange={(e) => set('windowStart', e.target.value)} />}</Field>
                  <Field label="Until">{(p) => <input {...p} type="time" value={form.windowEnd} onChange={(e) => set('windowEnd', e.target.value)} />}</Field>
                </div>
                <fieldset className="plain">
                  <legend>On</legend>
                  <div className="checks">
                    {DAYS.map((d) => (
                      <label key={d} className="inline">
                        <input type="checkbox" checked={form.days.includes(d)} onChange={(e) => set('days', e.target.checked ? [...form.days, d] : form.days.filter((x) => x !== d))} /> {d}
                      </label>
                    ))}
                  </div>
                </fieldset>
              </>
            )}
            <label className="inline">
              <input type="checkbox" checked={form.delayOn} onChange={(e) => set('delayOn', e.target.checked)} /> Own gap between sends (instead of each device's)
            </label>
            {form.delayOn && (
              <div className="row">
                <Field label="Shortest gap (s)">{(p) => <input {...p} type="number" min={0} max={86400} value={form.delayMin} onChange={(e) => set('delayMin', e.target.value)} />}</Field>
                <Field label="Longest gap (s)">{(p) => <input {...p} type="number" min={0} max={86400} value={form.delayMax} onChange={(e) => set('delayMax', e.target.value)} />}</Field>
              </div>
            )}
            {form.mode === 'pool' && (
              <div className="row">
                <Field label="Per device per hour" hint="empty: no cap">{(p) => <input {...p} type="number" min={1} value={form.hourlyQuota} onChange={(e) => set('hourlyQuota', e.target.value)} />}</Field>
                <Field label="Per device per day">{(p) => <input {...p} type="number" min={1} value={form.dailyQuota} onChange={(e) => set('dailyQuota', e.target.value)} />}</Field>
                <Field label="Campaign per day">{(p) => <input {...p} type="number" min={1} value={form.dailyLimit} onChange={(e) => set('dailyLimit', e.target.value)} />}</Field>
              </div>
            )}
          </fieldset>
          <div className="actions">
            <button type="submit" className="primary" disabled={busy || !editable}>
              {form.startsAt ? 'Save and schedule' : 'Save and start'}
            </button>
            <button type="button" disabled={busy || !editable} onClick={() => void save(false)}>
              Save as draft
            </button>
          </div>
        </div>
        <aside className="editor-side" aria-label="Preview">
          <div className="card sticky">
            <h2>Preview</h2>
            {audience && audience.sample.length > 0 && (
              <Field label="As received by">
                {(p) => (
                  <select {...p} value={sample?.id ?? ''} onChange={(e) => setSampleId(Number(e.target.value))}>
                    {audience.sample.map((l) => (
                      <option key={l.id} value={l.id}>
                        {l.name || l.phone}
                      </option>
                    ))}
                  </select>
                )}
              </Field>
            )}
            <Bubble
              text={preview.text ?? form.body}
              media={form.mediaType ? { type: form.mediaType, caption: form.caption || undefined, src: form.mediaId && form.mediaType === 'image' ? `/api/v1/media/${form.mediaId}/content` : undefined, name: form.mediaUrl.split('/').pop() || undefined } : null}
            />
          </div>
          {existing && <ForecastCard campaignId={existing.id} />}
        </aside>
      </form>
    </section>
  );
}
