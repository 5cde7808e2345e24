/** One sequence: its chain, its steps (delays, send times, messages) with per-step progress, its settings. */
import { useState, type FormEvent } from 'react';
import { api, messageOf, type Sequence, type SequenceProgress, type Step } from '../api';
import { csv, n, pct } from '../format';
import { useInterval, useLoad } from '../hooks';
import { Link } from '../router';
import { useSession } from '../session';
import { Badge, Dialog, Empty, Field, Loading, Notice, Progress, Stat } from '../ui';
import { Bubble } from '../whatsapp';
import { allSequences, chains, Flow, SequenceForm } from './Sequences';

interface Detail {
  sequence: Sequence;
  steps: Step[];
  progress: SequenceProgress;
  all: Sequence[];
}

async function load(id: number, signal: AbortSignal): Promise<Detail> {
  const [sequence, steps, progress, all] = await Promise.all([
    api<Sequence>(`/sequences/${id}`, { signal }),
    api<{ data: Step[] }>(`/sequences/${id}/steps`, { signal }),
    api<SequenceProgress>(`/sequences/${id}/progress`, { signal }),
    allSequences(signal),
  ]);
  return { sequence, steps: steps.data, progress, all };
}

function waitText(s: Step): string {
  const parts = [s.delay.days && `${s.delay.days} d`, s.delay.hours && `${s.delay.hours} h`, s.delay.minutes && `${s.delay.minutes} min`].filter(Boolean);
  const wait = parts.length ? `wait ${parts.join(' ')}` : 'no wait';
  return s.send_time ? `${wait}, then at ${s.send_time}` : wait;
}

export function SequenceDetail({ id }: { id: number }) {
  const { me } = useSession();
  const loaded = useLoad((signal) => load(id, signal), [id]);
  useInterval(loaded.reload, 15_000);
  const [editing, setEditing] = useState<Step | 'new' | null>(null);
  const [settings, setSettings] = useState(false);
  const [enrolling, setEnrolling] = useState(false);
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

  if (!loaded.data) return loaded.error ? <Notice error={loaded.error} /> : <Loading />;
  const { sequence: s, steps, progress, all } = loaded.data;
  const chain = chains(all).find((c) => c.some((x) => x.id === id));
  const stepProgress = (stepId: number) => progress.steps.find((p) => p.step_id === stepId);
  const e = progress.enrollments;

  return (
    <section aria-labelledby="sequence-title">
      <p>
        <Link href="/sequences">‹ Sequences</Link>
      </p>
      <div className="page-head">
        <h1 id="sequence-title">
          {s.name} <Badge status={s.status} />
        </h1>
        <div className="actions">
          <button type="button" onClick={() => setEnrolling(true)}>
            Enroll leads
          </button>
          <button type="button" onClick={() => setSettings(true)}>
            Settings
          </button>
          {s.status === 'active' ? (
            <button type="button" onClick={() => void act(() => api(`/sequences/${id}/pause`, { method: 'POST' }))}>
              Pause
            </button>
          ) : (
            <button type="button" className="primary" onClick={() => void act(() => api(`/sequences/${id}/resume`, { method: 'POST' }))}>
              Resume
            </button>
          )}
        </div>
      </div>
      <Notice error={error} />
      {chain && chain.length > 1 && (
        <div className="card">
          <h2>Chain</h2>
          <Flow chain={chain} current={id} />
        </div>
      )}
      <div className="card">
        <h2>Progress</h2>
        <p className="muted">
          Trigger <code>{s.trigger}</code> · {s.window ? `sends ${s.window.start}–${s.window.end} (${s.window.time_zone})` : 'sends at any hour'} · times in {me.time_zone}
        </p>
        <div className="stats" aria-live="polite">
          <Stat label="Enrolled" value={n(e.total)} />
          <Stat label="Active" value={n(e.active)} />
          <Stat label="Completed" value={n(e.completed)} tone="good" />
          <Stat label="Exited" value={n(e.exited)} />
          <Stat label="Done" value={`${Math.round(progress.percent_complete * 10) / 10}%`} />
        </div>
        {Object.keys(progress.exit_reasons).length > 0 && (
          <p className="hint">
            Exits:{' '}
            {Object.entries(progress.exit_reasons)
              .map(([k, v]) => `${k.replace(/_/g, ' ')} ${n(v)}`)
              .join(' · ')}
          </p>
        )}
      </div>
      <div className="card">
        <div className="page-head">
          <h2>Steps</h2>
          <button type="button" className="primary" onClick={() => setEditing('new')}>
            Add step
          </button>
        </div>
        {steps.length === 0 ? (
          <Empty>No step yet: add the first message.</Empty>
        ) : (
          <ol className="steps">
            {steps.map((step, i) => {
              const p = stepProgress(step.id);
              return (
                <li key={step.id} className="step">
                  <span className="step-num" aria-hidden="true">
                    {step.position}
                  </span>
                  <div className="card">
                    <p className="step-wait">
                      Step {step.position}: {waitText(step)}
                    </p>
                    <Bubble text={step.body} />
                    {p && (
                      <>
                        <p className="hint">
                          reached {n(p.reached)} · waiting here {n(p.active)} · paused {n(p.paused)} · exited here {n(p.exited)}
                          {e.total > 0 ? ` · ${pct(p.reached, e.total)}% of enrolled` : ''}
                        </p>
                        <Progress value={p.reached} max={Math.max(1, e.total)} label={`Step ${step.position}: leads reached`} />
                      </>
                    )}
                    <div className="actions">
                      <button type="button" className="small" onClick={() => setEditing(step)}>
                        Edit
                      </button>
                      <button type="button" className="small" disabled={i === 0} aria-label={`Move step ${step.position} up`} onClick={() => void act(() => api(`/sequences/${id}/steps/${step.id}`, { method: 'PATCH', body: { position: step.position - 1 } }))}>
                        ↑
                      </button>
                      <button type="button" className="small" disabled={i === steps.length - 1} aria-label={`Move step ${step.position} down`} onClick={() => void act(() => api(`/sequences/${id}/steps/${step.id}`, { method: 'PATCH', body: { position: step.position + 1 } }))}>
                        ↓
                      </button>
                      <button
                        type="button"
                        className="small danger"
                        onClick={() => {
                          if (confirm(`Delete step ${step.position}?`)) void act(() => api(`/sequences/${id}/steps/${step.id}`, { method: 'DELETE' }));
                        }}
                      >
                        Delete
                      </button>
                    </div>
                  </div>
                </li>
              );
            })}
          </ol>
        )}
      </div>
      <Dialog title={editing === 'new' ? 'Add a step' : editing ? `Step ${editing.position}` : 'Step'} open={editing !== null} onClose={() => setEditing(null)}>
        {editing !== null && (
          <StepForm
            sequenceId={id}
            step={editing === 'new' ? undefined : editing}
            onSaved={() => {
              setEditing(null);
              loaded.reload();
            }}
          />
        )}
      </Dialog>
      <Dialog title="Enroll leads" open={enrolling} onClose={() => setEnrolling(false)}>
        {enrolling && <EnrollForm sequenceId={id} onDone={loaded.reload} />}
      </Dialog>
      <Dialog title="Sequence settings" open={settings} onClose={() => setSettings(false)}>
        <SequenceForm
          sequence={s}
          sequences={all}
          onSaved={() => {
            setSettings(false);
            loaded.reload();
          }}
        />
      </Dialog>
    </section>
  );
}

function StepForm({ sequenceId, step, onSaved }: { sequenceId: number; step?: Step; onSaved: () => void }) {
  const [days, setDays] = useState(String(step?.delay.days ?? 1));
  const [hours, setHours] = useState(String(step?.delay.hours ?? 0));
  const [minutes, setMinutes] = useState(String(step?.delay.minutes ?? 0));
  const [sendTime, setSendTime] = useState(step?.send_time ?? '');
  const [body, setBody] = useState(step?.body ?? '');
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    const data = { delay: { days: Number(days) || 0, hours: Number(hours) || 0, minutes: Number(minutes) || 0 }, send_time: sendTime || null, body };
    try {
      if (step) await api(`/sequences/${sequenceId}/steps/${step.id}`, { method: 'PATCH', body: data });
      else await api(`/sequences/${sequenceId}/steps`, { method: 'POST', body: data });
      onSaved();
    } catch (err) {
      setError(messageOf(err));
    }
  };
  return (
    <form onSubmit={(e) => void submit(e)}>
      <Notice error={error} />
      <fieldset className="plain">
        <legend>Wait after the previous step (after enrolling, for the first)</legend>
        <div className="row">
          <Field label="Days">{(p) => <input {...p} type="number" min={0} max={365} value={days} onChange={(e) => setDays(e.target.value)} />}</Field>
          <Field label="Hours">{(p) => <input {...p} type="number" min={0} value={hours} onChange={(e) => setHours(e.target.value)} />}</Field>
          <Field label="Minutes">{(p) => <input {...p} type="number" min={0} value={minutes} onChange={(e) => setMinutes(e.target.value)} />}</Field>
        </div>
      </fieldset>
      <Field label="Then send at" hint="a time of day in your zone; empty: as soon as the wait is over">
        {(p) => <input {...p} type="time" value={sendTime} onChange={(e) => setSendTime(e.target.value)} />}
      </Field>
      <Field label="Message">{(p) => <textarea {...p} required rows={5} maxLength={4096} value={body} onChange={(e) => setBody(e.target.value)} />}</Field>
      <Bubble text={body || ' '} />
      <button type="submit" className="primary">
        Save step
      </button>
    </form>
  );
}

/** Enrolls the leads a filter selects (a lead already enrolled, or finished without re-entry, is skipped). */
function EnrollForm({ sequenceId, onDone }: { sequenceId: number; onDone: () => void }) {
  const [niches, setNiches] = useState('');
  const [statuses, setStatuses] = useState('');
  const [triggers, setTriggers] = useState('');
  const [result, setResult] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setResult(null);
    const filter = {
      ...(csv(niches).length ? { niches: csv(niches) } : {}),
      ...(csv(statuses).length ? { statuses: csv(statuses) } : {}),
      ...(csv(triggers).length ? { triggers: csv(triggers) } : {}),
      opted_out: false,
    };
    try {
      const r = await api<{ matched: number; enrolled: number; skipped: number }>(`/sequences/${sequenceId}/enrollments`, { method: 'POST', body: { filter } });
      setResult(`${n(r.enrolled)} enrolled of ${n(r.matched)} matching leads (${n(r.skipped)} skipped: already enrolled or finished).`);
      onDone();
    } catch (err) {
      setError(messageOf(err));
    }
  };
  return (
    <form onSubmit={(e) => void submit(e)}>
      <Notice error={error} />
      <Notice kind="success">{result}</Notice>
      <p className="hint">Leads that get the trigger tag are enrolled by themselves; this enrolls leads you already have. Every list you fill must match; empty ones match all.</p>
      <Field label="Niches" hint="any of, comma-separated">{(p) => <input {...p} value={niches} onChange={(e) => setNiches(e.target.value)} />}</Field>
      <Field label="Statuses" hint="any of">{(p) => <input {...p} value={statuses} onChange={(e) => setStatuses(e.target.value)} />}</Field>
      <Field label="Triggers" hint="any of">{(p) => <input {...p} value={triggers} onChange={(e) => setTriggers(e.target.value)} />}</Field>
      <button type="submit" className="primary">
        Enroll
      </button>
    </form>
  );
}
