/**
 * Leads: a filtered table paged by keyset (the cursor is the last id shown, so page 20,000 costs
 * what page 1 does), CSV import with progress and its error report, export, bulk actions.
 */
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { api, messageOf, withQuery, type Device, type ImportError, type Lead, type LeadImport, type Page } from '../api';
import { csv, dateTime, n, pct } from '../format';
import { useInterval, useLoad } from '../hooks';
import { useLive } from '../live';
import { useSession } from '../session';
import { Badge, Dialog, Empty, Field, Loading, Notice, Progress } from '../ui';

/** A device picker whose empty choice is the shared pool (a lead with no device). */
function DeviceField({ label, devices, value, onChange }: { label: string; devices: Device[]; value: string; onChange: (v: string) => void }) {
  return (
    <Field label={label}>
      {(p) => (
        <select {...p} value={value} onChange={(e) => onChange(e.target.value)}>
          <option value="">The shared pool</option>
          {devices.map((d) => (
            <option key={d.id} value={d.id}>
              {d.name}
            </option>
          ))}
        </select>
      )}
    </Field>
  );
}

interface Filters {
  q: string;
  niche: string;
  status: string;
  trigger: string;
  device: string;
  opted_out: '' | 'true' | 'false';
}

const NO_FILTERS: Filters = { q: '', niche: '', status: '', trigger: '', device: '', opted_out: '' };

function filterQuery(f: Filters) {
  return {
    q: f.q.trim() || undefined,
    niche: csv(f.niche),
    status: csv(f.status),
    trigger: csv(f.trigger),
    device_id: f.device && f.device !== 'pool' ? f.device : undefined,
    pool: f.device === 'pool' ? 'true' : undefined,
    opted_out: f.opted_out || undefined,
  };
}

function bodyFilter(f: Filters) {
  const q = filterQuery(f);
  return {
    ...(q.q ? { q: q.q } : {}),
    ...(q.niche.length ? { niches: q.niche } : {}),
    ...(q.status.length ? { statuses: q.status } : {}),
    ...(q.trigger.length ? { triggers: q.trigger } : {}),
    ...(q.device_id ? { device_ids: [Number(q.device_id)] } : {}),
    ...(q.pool ? { pool: true } : {}),
    ...(q.opted_out ? { opted_out: q.opted_out === 'true' } : {}),
  };
}

const PAGE = 50;

export function Leads() {
  const { me } = useSession();
  const [draft, setDraft] = useState<Filters>(NO_FILTERS);
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  // The cursors of the pages before this one: "previous" pops one.
  const [cursors, setCursors] = useState<(string | null)[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [importing, setImporting] = useState(false);
  const [bulk, setBulk] = useState(false);
  const [editing, setEditing] = useState<Lead | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const devices = useLoad((signal) => api<Page<Device>>('/devices', { query: { limit: 500 }, signal }), []);
  const leads = useLoad((signal) => api<Page<Lead>>('/leads', { query: { ...filterQuery(filters), limit: PAGE, cursor }, signal }), [filters, cursor]);
  const deviceName = (id: number | null) => (id === null ? 'shared pool' : (devices.data?.data.find((d) => d.id === id)?.name ?? `#${id}`));

  const apply = (e?: FormEvent) => {
    e?.preventDefault();
    setFilters(draft);
    setCursor(null);
    setCursors([]);
    setSelected(new Set());
  };

  const rows = leads.data?.data ?? [];
  const allOnPage = rows.length > 0 && rows.every((r) => selected.has(r.id));

  return (
    <section aria-labelledby="leads-title">
      <div className="page-head">
        <h1 id="leads-title">Leads</h1>
        <div className="actions">
          <button type="button" className="primary" onClick={() => setImporting(true)}>
            Import CSV
          </button>
          <a className="button" href={withQuery('/api/v1/leads/export', filterQuery(filters))} download="leads.csv">
            Export CSV
          </a>
          <button type="button" onClick={() => setBulk(true)}>
            Bulk action{selected.size > 0 ? ` (${selected.size})` : ''}
          </button>
        </div>
      </div>
      <form className="filters card" onSubmit={apply} role="search" aria-label="Filter leads">
        <Field label="Search">
          {(p) => <input {...p} type="search" placeholder="name, or 3+ digits of the phone" value={draft.q} onChange={(e) => setDraft({ ...draft, q: e.target.value })} />}
        </Field>
        <Field label="Niche">{(p) => <input {...p} placeholder="e.g. yoga, pilates" value={draft.niche} onChange={(e) => setDraft({ ...draft, niche: e.target.value })} />}</Field>
        <Field label="Status">{(p) => <input {...p} placeholder="e.g. prospect" value={draft.status} onChange={(e) => setDraft({ ...draft, status: e.target.value })} />}</Field>
        <Field label="Trigger">{(p) => <input {...p} value={draft.trigger} onChange={(e) => setDraft({ ...draft, trigger: e.target.value })} />}</Field>
        <Field label="Device">
          {(p) => (
            <select {...p} value={draft.device} onChange={(e) => setDraft({ ...draft, device: e.target.value })}>
              <option value="">Any</option>
              <option value="pool">Shared pool</option>
              {devices.data?.data.map((d) => (
                <option key={d.id} value={d.id}>
                  {d.name}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Opted out">
          {(p) => (
            <select {...p} value={draft.opted_out} onChange={(e) => setDraft({ ...draft, opted_out: e.target.value as Filters['opted_out'] })}>
              <option value="">Either</option>
              <option value="false">No</option>
              <option value="true">Yes</option>
            </select>
          )}
        </Field>
        <div className="filter-buttons">
          <button type="submit" className="primary">
            Apply
          </button>
          <button
            type="button"
            onClick={() => {
              setDraft(NO_FILTERS);
              setFilters(NO_FILTERS);
              setCursor(null);
              setCursors([]);
            }}
          >
            Clear
          </button>
        </div>
      </form>
      <Notice error={leads.error} />
      <Notice kind="success">{message}</Notice>
      {!leads.data ? (
        <Loading />
      ) : rows.length === 0 ? (
        <Empty>No leads match. Import a CSV file to add some.</Empty>
      ) : (
        <div className="table-wrap">
          <table className="table">
            <caption className="sr-only">Leads, newest first</caption>
            <thead>
              <tr>
                <th scope="col">
                  <input
                    type="checkbox"
                    aria-label="Select every lead on this page"
                    checked={allOnPage}
                    onChange={() => {
                      const next = new Set(selected);
                      for (const r of rows) allOnPage ? next.delete(r.id) : next.add(r.id);
                      setSelected(next);
                    }}
                  />
                </th>
                <th scope="col">Name</th>
                <th scope="col">Phone</th>
                <th scope="col">Status</th>
                <th scope="col">Niches</th>
                <th scope="col">Triggers</th>
                <th scope="col">Device</th>
                <th scope="col">Added</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((l) => (
                <tr key={l.id} className={l.opted_out_at ? 'opted-out' : undefined}>
                  <td>
                    <input
                      type="checkbox"
                      aria-label={`Select ${l.name || l.phone}`}
                      checked={selected.has(l.id)}
                      onChange={() => {
                        const next = new Set(selected);
                        next.has(l.id) ? next.delete(l.id) : next.add(l.id);
                        setSelected(next);
                      }}
                    />
                  </td>
                  <td>
                    <button type="button" className="linkish" onClick={() => setEditing(l)}>
                      {l.name || <span className="muted">no name</span>}
                    </button>
                  </td>
                  <td className="mono">{l.phone}</td>
                  <td>
                    <Badge status={l.status} />
                    {l.opted_out_at && <Badge status="opted_out" />}
                  </td>
                  <td>{l.niches.join(', ')}</td>
                  <td>{l.triggers.join(', ')}</td>
                  <td>{deviceName(l.device_id)}</td>
                  <td>{dateTime(l.created_at, me.time_zone)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <nav className="pager" aria-label="Pages">
        <button
          type="button"
          disabled={cursors.length === 0}
          onClick={() => {
            const prev = [...cursors];
            setCursor(prev.pop() ?? null);
            setCursors(prev);
          }}
        >
          Previous
        </button>
        <span className="muted">Page {cursors.length + 1}</span>
        <button
          type="button"
          disabled={!leads.data?.next_cursor}
          onClick={() => {
            setCursors([...cursors, cursor]);
            setCursor(leads.data?.next_cursor ?? null);
          }}
        >
          Next
        </button>
      </nav>
      <Dialog title="Import leads from CSV" open={importing} onClose={() => { setImporting(false); leads.reload(); }}>
        <ImportCsv devices={devices.data?.data ?? []} onDone={() => leads.reload()} />
      </Dialog>
      <Dialog title={editing ? `Lead ${editing.name || editing.phone}` : 'Lead'} open={editing !== null} onClose={() => setEditing(null)}>
        {editing && (
          <EditLead
            lead={editing}
            devices={devices.data?.data ?? []}
            onDone={(text) => {
              setEditing(null);
              setMessage(text);
              leads.reload();
            }}
          />
        )}
      </Dialog>
      <Dialog title="Bulk action" open={bulk} onClose={() => setBulk(false)}>
        <BulkAction
          devices={devices.data?.data ?? []}
          selected={[...selected]}
          filter={bodyFilter(filters)}
          onDone={(text) => {
            setBulk(false);
            setMessage(text);
            setSelected(new Set());
            leads.reload();
          }}
        />
      </Dialog>
    </section>
  );
}

function ImportCsv({ devices, onDone }: { devices: Device[]; onDone: () => void }) {
  const file = useRef<HTMLInputElement>(null);
  const [job, setJob] = useState<LeadImport | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [onDuplicate, setOnDuplicate] = useState<'skip' | 'update'>('skip');
  const [device, setDevice] = useState('');
  const [niches, setNiches] = useState('');
  const [busy, setBusy] = useState(false);

  const running = job !== null && (job.status === 'queued' || job.status === 'running');
  const poll = () =>
    job &&
    void api<LeadImport>(`/leads/imports/${job.id}`).then((j) => {
      setJob(j);
      if (j.status === 'completed' || j.status === 'failed') onDone();
    }, () => undefined);
  useInterval(poll, running ? 700 : null);
  useLive(['import.progress', 'lead_import.progress', 'import.status'], (d) => {
    if (job && Number(d.import_id ?? d.id) === job.id) poll();
  });

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const f = file.current?.files?.[0];
    if (!f) return setError('Choose a CSV file first.');
    setError(null);
    setBusy(true);
    try {
      setJob(
        await api<LeadImport>('/leads/imports', {
          method: 'POST',
          raw: { data: f, type: 'text/csv' },
          query: { on_duplicate: onDuplicate, device_id: device || undefined, niches: csv(niches), file_name: f.name },
        }),
      );
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };

  const downloadErrors = async () => {
    if (!job) return;
    const lines = ['line,code,message,excerpt'];
    let after: number | null = null;
    do {
      const page: { data: ImportError[]; next_after_line: number | null } = await api('/leads/imports/' + job.id + '/errors', { query: { limit: 1000, after_line: after ?? undefined } });
      for (const r of page.data) lines.push([r.line, r.code, r.message, r.excerpt ?? ''].map((v) => `"${String(v).replace(/"/g, '""')}"`).join(','));
      after = page.next_after_line;
    } while (after !== null);
    const url = URL.createObjectURL(new Blob([lines.join('\n') + '\n'], { type: 'text/csv' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = `import-${job.id}-errors.csv`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };

  return (
    <div>
      <form onSubmit={(e) => void submit(e)}>
        <Notice error={error} />
        <p className="hint">Columns: phone (required), name, niches, status, triggers, source; any other column becomes an attribute.</p>
        <Field label="CSV file">{(p) => <input {...p} ref={file} type="file" accept=".csv,text/csv" required />}</Field>
        <div className="row">
          <Field label="A phone you already have">
            {(p) => (
              <select {...p} value={onDuplicate} onChange={(e) => setOnDuplicate(e.target.value as 'skip' | 'update')}>
                <option value="skip">Leave it as it is</option>
                <option value="update">Update it from the file</option>
              </select>
            )}
          </Field>
          <DeviceField label="Give the leads to" devices={devices} value={device} onChange={setDevice} />
        </div>
        <Field label="Add niches" hint="comma-separated, added to every row">
          {(p) => <input {...p} value={niches} onChange={(e) => setNiches(e.target.value)} />}
        </Field>
        <button type="submit" className="primary" disabled={busy || running}>
          Import
        </button>
      </form>
      {job && (
        <div className="import-progress" aria-live="polite" data-testid="import-progress">
          <p>
            <Badge status={job.status} /> {job.file_name}
          </p>
          <Progress value={job.status === 'completed' ? 1 : job.bytes_read} max={job.status === 'completed' ? 1 : Math.max(1, job.file_bytes)} label="Import progress" />
          <p>
            {job.status === 'completed' ? 100 : pct(job.bytes_read, job.file_bytes)}% · {n(job.rows_total)} rows: {n(job.inserted)} added, {n(job.updated)} updated, {n(job.skipped)} skipped, {n(job.failed)} refused
          </p>
          {job.error && <Notice error={job.error} />}
          {job.failed > 0 && !running && (
            <button type="button" onClick={() => void downloadErrors()}>
              Download the error report
            </button>
          )}
        </div>
      )}
    </div>
  );
}

type Op = 'set_status' | 'add_niches' | 'remove_niches' | 'add_triggers' | 'remove_triggers' | 'assign_device' | 'opt_out' | 'delete';

function BulkAction({ devices, selected, filter, onDone }: { devices: Device[]; selected: number[]; filter: Record<string, unknown>; onDone: (text: string) => void }) {
  const [scope, setScope] = useState<'selected' | 'filter'>(selected.length > 0 ? 'selected' : 'filter');
  const [op, setOp] = useState<Op>('set_status');
  const [value, setValue] = useState('');
  const [device, setDevice] = useState('');
  const [error, setError] = useState<string | null>(null);
  useEffect(() => setScope(selected.length > 0 ? 'selected' : 'filter'), [selected.length]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    const action =
      op === 'set_status'
        ? { op, value: value.trim() }
        : op === 'assign_device'
          ? { op, device_id: device === '' ? null : Number(device) }
          : op === 'opt_out' || op === 'delete'
            ? { op }
            : { op, values: csv(value) };
    if ((op === 'delete' || op === 'opt_out') && !confirm(`${op === 'delete' ? 'Delete' : 'Opt out'} ${scope === 'selected' ? `${selected.length} leads` : 'every lead the filter selects'}?`)) return;
    try {
      const r = await api<{ affected: number; cancelled_messages: number }>('/leads/bulk', { method: 'POST', body: { ...(scope === 'selected' ? { ids: selected } : { filter }), action } });
      onDone(`${n(r.affected)} leads changed${r.cancelled_messages ? `, ${n(r.cancelled_messages)} waiting messages cancelled` : ''}.`);
    } catch (err) {
      setError(messageOf(err));
    }
  };
  return (
    <form onSubmit={(e) => void submit(e)}>
      <Notice error={error} />
      <fieldset>
        <legend>Which leads</legend>
        <label className="inline">
          <input type="radio" name="scope" checked={scope === 'selected'} disabled={selected.length === 0} onChange={() => setScope('selected')} /> The {selected.length} selected
        </label>
        <label className="inline">
          <input type="radio" name="scope" checked={scope === 'filter'} onChange={() => setScope('filter')} /> Every lead the filter selects
        </label>
      </fieldset>
      <Field label="Action">
        {(p) => (
          <select {...p} value={op} onChange={(e) => setOp(e.target.value as Op)}>
            <option value="set_status">Set status</option>
            <option value="add_niches">Add niches</option>
            <option value="remove_niches">Remove niches</option>
            <option value="add_triggers">Add triggers</option>
            <option value="remove_triggers">Remove triggers</option>
            <option value="assign_device">Give to a device</option>
            <option value="opt_out">Opt out</option>
            <option value="delete">Delete</option>
          </select>
        )}
      </Field>
      {op === 'assign_device' ? (
        <DeviceField label="Device" devices={devices} value={device} onChange={setDevice} />
      ) : op !== 'opt_out' && op !== 'delete' ? (
        <Field label={op === 'set_status' ? 'Status' : 'Values'} hint={op === 'set_status' ? undefined : 'comma-separated'}>
          {(p) => <input {...p} required value={value} onChange={(e) => setValue(e.target.value)} />}
        </Field>
      ) : null}
      <button type="submit" className={op === 'delete' ? 'danger' : 'primary'}>
        Apply
      </button>
    </form>
  );
}

function EditLead({ lead, devices, onDone }: { lead: Lead; devices: Device[]; onDone: (text: string) => void }) {
  const [name, setName] = useState(lead.name);
  const [phone, setPhone] = useState(lead.phone);
  const [status, setStatus] = useState(lead.status);
  const [niches, setNiches] = useState(lead.niches.join(', '));
  const [triggers, setTriggers] = useState(lead.triggers.join(', '));
  const [device, setDevice] = useState(lead.device_id === null ? '' : String(lead.device_id));
  const [optedOut, setOptedOut] = useState(lead.opted_out_at !== null);
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await api(`/leads/${lead.id}`, {
        method: 'PATCH',
        body: { name, phone, status: status.trim(), niches: csv(niches), triggers: csv(triggers), device_id: device === '' ? null : Number(device), opted_out: optedOut },
      });
      onDone('Lead saved.');
    } catch (err) {
      setError(messageOf(err));
    }
  };
  const remove = async () => {
    if (!confirm(`Delete ${lead.name || lead.phone}? What waits for this lead is cancelled.`)) return;
    try {
      await api(`/leads/${lead.id}`, { method: 'DELETE' });
      onDone('Lead deleted.');
    } catch (err) {
      setError(messageOf(err));
    }
  };
  const attributes = Object.entries(lead.attributes);
  return (
    <form onSubmit={(e) => void submit(e)}>
      <Notice error={error} />
      <div className="row">
        <Field label="Name">{(p) => <input {...p} maxLength={200} value={name} onChange={(e) => setName(e.target.value)} />}</Field>
        <Field label="Phone">{(p) => <input {...p} type="tel" required value={phone} onChange={(e) => setPhone(e.target.value)} />}</Field>
      </div>
      <div className="row">
        <Field label="Status">{(p) => <input {...p} required value={status} onChange={(e) => setStatus(e.target.value)} />}</Field>
        <DeviceField label="Device" devices={devices} value={device} onChange={setDevice} />
      </div>
      <Field label="Niches" hint="comma-separated">{(p) => <input {...p} value={niches} onChange={(e) => setNiches(e.target.value)} />}</Field>
      <Field label="Triggers" hint="comma-separated; adding a sequence's trigger enrolls the lead">{(p) => <input {...p} value={triggers} onChange={(e) => setTriggers(e.target.value)} />}</Field>
      <label className="inline">
        <input type="checkbox" checked={optedOut} onChange={(e) => setOptedOut(e.target.checked)} /> Opted out (nothing is sent to this lead)
      </label>
      {attributes.length > 0 && (
        <dl className="kv">
          {attributes.map(([k, v]) => (
            <div key={k} className="kv-pair">
              <dt>{k}</dt>
              <dd>{String(v)}</dd>
            </div>
          ))}
        </dl>
      )}
      <div className="actions">
        <button type="submit" className="primary">
          Save lead
        </button>
        <button type="button" className="danger" onClick={() => void remove()}>
          Delete lead
        </button>
      </div>
    </form>
  );
}
