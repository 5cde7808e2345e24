/** The few building blocks every page shares: fields with labels, notices, figures, bars, a chart. */
import { useEffect, useId, useRef, type ReactNode } from 'react';

export function Field({ label, hint, children, error }: { label: string; hint?: string; error?: string | null; children: (props: { id: string; 'aria-describedby'?: string; 'aria-invalid'?: boolean }) => ReactNode }) {
  const id = useId();
  const hintId = hint || error ? `${id}-hint` : undefined;
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      {children({ id, ...(hintId ? { 'aria-describedby': hintId } : {}), ...(error ? { 'aria-invalid': true } : {}) })}
      {(hint || error) && (
        <small id={hintId} className={error ? 'field-error' : 'hint'}>
          {error ?? hint}
        </small>
      )}
    </div>
  );
}

export function Notice({ error, children, kind = 'error' }: { error?: string | null; children?: ReactNode; kind?: 'error' | 'info' | 'success' }) {
  const text = error ?? children;
  if (!text) return null;
  return (
    <div className={`notice notice-${kind}`} role={kind === 'error' ? 'alert' : 'status'}>
      {text}
    </div>
  );
}

export function Loading({ what = 'Loading' }: { what?: string }) {
  return (
    <p className="muted" role="status">
      {what}…
    </p>
  );
}

export function Stat({ label, value, tone }: { label: string; value: ReactNode; tone?: string }) {
  return (
    <div className={`stat${tone ? ` stat-${tone}` : ''}`}>
      <div className="stat-value">{value}</div>
      <div className="stat-label">{label}</div>
    </div>
  );
}

export function Progress({ value, max, label, parts }: { value: number; max: number; label: string; parts?: { value: number; tone: string; label: string }[] }) {
  const p = max > 0 ? Math.min(100, (value / max) * 100) : 0;
  return (
    <div className="progress" role="progressbar" aria-label={label} aria-valuemin={0} aria-valuemax={max} aria-valuenow={value}>
      {parts ? (
        parts.map((part) => <span key={part.label} className={`bar bar-${part.tone}`} style={{ width: `${max > 0 ? (part.value / max) * 100 : 0}%` }} title={`${part.label}: ${part.value}`} />)
      ) : (
        <span className="bar bar-ok" style={{ width: `${p}%` }} />
      )}
    </div>
  );
}

export function Badge({ status }: { status: string }) {
  return <span className={`badge badge-${status.replace(/[^a-z_]/gi, '')}`}>{status.replace(/_/g, ' ')}</span>;
}

/** A modal on the native <dialog>: focus is trapped and Escape closes it. */
export function Dialog({ title, open, onClose, children }: { title: string; open: boolean; onClose: () => void; children: ReactNode }) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return (
    <dialog ref={ref} aria-labelledby={titleId} onClose={onClose} onCancel={onClose}>
      <div className="dialog-head">
        <h2 id={titleId}>{title}</h2>
        <button type="button" className="ghost" onClick={onClose} aria-label="Close">
          ×
        </button>
      </div>
      {open && children}
    </dialog>
  );
}

/**
 * Messages per minute as bars, drawn by hand in SVG. The SVG stretches to its box, so its labels are
 * HTML beside it (stretched SVG text would distort); the caption says the figures in words.
 */
export function ThroughputChart({ points, label }: { points: { minute: string; sent: number }[]; label: string }) {
  const W = 600;
  const H = 140;
  const peak = Math.max(0, ...points.map((p) => p.sent));
  const max = Math.max(1, peak);
  const bw = points.length > 0 ? W / points.length : W;
  const total = points.reduce((a, p) => a + p.sent, 0);
  const last = points[points.length - 1];
  return (
    <figure className="chart">
      <div className="chart-plot">
        <span className="chart-max" aria-hidden="true">
          {max}
        </span>
        <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${label}: ${total} messages in the last ${points.length} minutes, at most ${peak} in a minute`} preserveAspectRatio="none">
          <line x1="0" y1={H - 0.5} x2={W} y2={H - 0.5} className="axis" />
          <line x1="0" y1={H / 2} x2={W} y2={H / 2} className="grid" />
          <line x1="0" y1="0.5" x2={W} y2="0.5" className="grid" />
          {points.map((p, i) => {
            const h = (p.sent / max) * (H - 2);
            return (
              <rect key={p.minute} x={i * bw + 1} y={H - h} width={Math.max(1, bw - 2)} height={h} className="col">
                <title>{`${new Date(p.minute).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}: ${p.sent}`}</title>
              </rect>
            );
          })}
        </svg>
      </div>
      <div className="chart-x" aria-hidden="true">
        <span>−{points.length} min</span>
        <span>now</span>
      </div>
      <figcaption>
        <span aria-live="polite">{last ? `${last.sent} this minute` : 'no data yet'}</span> · {total} in the last hour · at most {peak} a minute
      </figcaption>
    </figure>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}
