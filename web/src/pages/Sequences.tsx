/** Drip sequences: the list, the chains they form, and a new one. */
import { useState, type FormEvent } from 'react';
import { api, messageOf, type Page, type Sequence } from '../api';
import { n } from '../format';
import { useLoad } from '../hooks';
import { Link, navigate } from '../router';
import { Badge, Dialog, Empty, Field, Loading, Notice } from '../ui';

export async function allSequences(signal?: AbortSignal): Promise<Sequence[]> {
  const out: Sequence[] = [];
  let cursor: string | null = null;
  do {
    const p: Page<Sequence> = await api<Page<Sequence>>('/sequences', { query: { limit: 500, cursor }, ...(signal ? { signal } : {}) });
    out.push(...p.data);
    cursor = p.next_cursor;
  } while (cursor && out.length < 5000);
  return out;
}

/** The chains: sequences no other one leads to, each followed by where its leads go next. */
export function chains(list: Sequence[]): Sequence[][] {
  const byId = new Map(list.map((s) => [s.id, s]));
  const pointedAt = new Set(list.map((s) => s.next_sequence_id).filter((x): x is number => x !== null));
  const out: Sequence[][] = [];
  const seen = new Set<number>();
  const follow = (start: Sequence) => {
    const chain: Sequence[] = [];
    let s: Sequence | undefined = start;
    while (s && !chain.includes(s)) {
      chain.push(s);
      seen.add(s.id);
      s = s.next_sequence_id !== null ? byId.get(s.next_sequence_id) : undefined;
    }
    out.push(chain);
  };
  for (const s of list) if (!pointedAt.has(s.id)) follow(s);
  // What is left is a loop: show it from its lowest id.
  for (const s of list) if (!seen.has(s.id)) follow(s);
  return out;
}

export function Flow({ chain, current }: { chain: Sequence[]; current?: number }) {
  const last = chain[chain.length - 1]!;
  const loops = last.next_sequence_id !== null && chain.some((s) => s.id === last.next_sequence_id);
  return (
    <ol className="flow" aria-label={`Chain: ${chain.map((s) => s.name).join(', then ')}`}>
      {chain.map((s, i) => (
        <li key={s.id}>
          {i > 0 && (
            <span className="flow-arrow" aria-hidden="true">
              →
            </span>
          )}
          <Link href={`/sequences/${s.id}`} className={`flow-node${s.id === current ? ' current' : ''}`} aria-current={s.id === current ? 'page' : undefined}>
            {s.name}
            <span className="hint"> · {n(s.steps)} steps</span>
          </Link>
        </li>
      ))}
      {loops && (
        <li>
          <span className="flow-arrow">↩ back to {chain.find((s) => s.id === last.next_sequence_id)?.name}</span>
        </li>
      )}
    </ol>
  );
}

export function Sequences() {
  const loaded = useLoad(allSequences, []);
  const [creating, setCreating] = useState(false);
  const list = loaded.data ?? [];
  return (
    <section aria-labelledby="sequences-title">
      <div className="page-head">
        <h1 id="sequences-title">Sequences</h1>
        <button type="button" className="primary" onClick={() => setCreating(true)}>
          New sequence
        </button>
      </div>
      <Notice error={loaded.error} />
      {!loaded.data ? (
        <Loading />
      ) : list.length === 0 ? (
        <Empty>No sequence yet. A sequence sends a series of messages, with delays, to every lead that gets its trigger tag.</Empty>
      ) : (
        <>
          <div className="card">
            <h2>Chains</h2>
            {chains(list).map((c) => (
              <Flow key={c[0]!.id} chain={c} />
            ))}
          </div>
          <div className="table-wrap">
            <table className="table">
              <caption className="sr-only">Sequences</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Trigger</th>
                  <th scope="col">Status</th>
                  <th scope="col">Steps</th>
                  <th scope="col">Then</th>
                </tr>
              </thead>
              <tbody>
                {list.map((s) => (
                  <tr key={s.id}>
                    <td>
                      <Link href={`/sequences/${s.id}`}>{s.name}</Link>
                    </td>
                    <td className="mono">{s.trigger}</td>
                    <td>
                      <Badge status={s.status} />
                    </td>
                    <td>{n(s.steps)}</td>
                    <td>{s.next_sequence_id ? (list.find((x) => x.id === s.next_sequence_id)?.name ?? `#${s.next_sequence_id}`) : '–'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
      <Dialog title="New sequence" open={creating} onClose={() => setCreating(false)}>
        <SequenceForm sequences={list} onSaved={(s) => navigate(`/sequences/${s.id}`)} />
      </Dialog>
    </section>
  );
}

export function SequenceForm({ sequence, sequences, onSaved }: { sequence?: Sequence; sequences: Sequence[]; onSaved: (s: Sequence) => void }) {
  const [name, setName] = useState(sequence?.name ?? '');
  const [trigger, setTrigger] = useState(sequence?.trigger ?? '');
  const [next, setNext] = useState(sequence?.next_sequence_id ? String(sequence.next_sequence_id) : '');
  const [reentry, setReentry] = useState(sequence?.reentry ?? 'never');
  const [onFailure, setOnFailure] = useState(sequence?.on_failure ?? 'continue');
  const [exitOnReply, setExitOnReply] = useState(sequence?.exit_on_reply ?? true);
  const [windowOn, setWindowOn] = useState(!!sequence?.window);
  const [start, setStart] = useState(sequence?.window?.start ?? '09:00');
  const [end, setEnd] = useState(sequence?.window?.end ?? '18:00');
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    const body = {
      name: name.trim(),
      trigger: trigger.trim(),
      next_sequence_id: next ? Number(next) : null,
      reentry,
      on_failure: onFailure,
      exit_on_reply: exitOnReply,
      window: windowOn ? { start, end, ...(end < start ? { overnight: true } : {}) } : null,
    };
    try {
      onSaved(sequence ? await api<Sequence>(`/sequences/${sequence.id}`, { method: 'PATCH', body }) : await api<Sequence>('/sequences', { method: 'POST', body }));
    } catch (err) {
      setError(messageOf(err));
    }
  };
  return (
    <form onSubmit={(e) => void submit(e)}>
      <Notice error={error} />
      <Field label="Name">{(p) => <input {...p} required maxLength={200} value={name} onChange={(e) => setName(e.target.value)} />}</Field>
      <Field label="Trigger" hint="leads that get this trigger tag are enrolled">
        {(p) => <input {...p} required maxLength={100} value={trigger} onChange={(e) => setTrigger(e.target.value)} />}
      </Field>
      <Field label="When it ends, continue with">
        {(p) => (
          <select {...p} value={next} onChange={(e) => setNext(e.target.value)}>
            <option value="">Nothing (the chain ends)</option>
            {sequences
              .filter((s) => s.id !== sequence?.id)
              .map((s) => (
                <option key={s.id} value={s.id}>
                  {s.name}
                </option>
              ))}
          </select>
        )}
      </Field>
      <div className="row">
        <Field label="A lead that finished">
          {(p) => (
            <select {...p} value={reentry} onChange={(e) => setReentry(e.target.value as Sequence['reentry'])}>
              <option value="never">may not enroll again</option>
              <option value="after_completion">may enroll again</option>
            </select>
          )}
        </Field>
        <Field label="After a step fails">
          {(p) => (
            <select {...p} value={onFailure} onChange={(e) => setOnFailure(e.target.value as Sequence['on_failure'])}>
              <option value="continue">go on with the next step</option>
              <option value="stop">end the enrollment</option>
            </select>
          )}
        </Field>
      </div>
      <label className="inline">
        <input type="checkbox" checked={exitOnReply} onChange={(e) => setExitOnReply(e.target.checked)} /> A reply ends the lead's enrollment
      </label>
      <label className="inline">
        <input type="checkbox" checked={windowOn} onChange={(e) => setWindowOn(e.target.checked)} /> Send only within daily hours
      </label>
      {windowOn && (
        <div className="row">
          <Field label="From">{(p) => <input {...p} type="time" value={start} onChange={(e) => setStart(e.target.value)} />}</Field>
          <Field label="Until">{(p) => <input {...p} type="time" value={end} onChange={(e) => setEnd(e.target.value)} />}</Field>
        </div>
      )}
      <button type="submit" className="primary">
        Save
      </button>
    </form>
  );
}
