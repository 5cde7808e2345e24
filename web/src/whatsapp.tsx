/** WhatsApp's text formatting, rendered as React nodes (never as HTML): *bold*, _italic_, ~strike~, ```mono```. */
import type { ReactNode } from 'react';
import { time as clock } from './format';
import { useSession } from './session';

const RULES: { re: RegExp; wrap: (inner: ReactNode[], key: string) => ReactNode }[] = [
  { re: /```([\s\S]+?)```/, wrap: (c, k) => <code key={k}>{c}</code> },
  { re: /\*([^*\n]+)\*/, wrap: (c, k) => <strong key={k}>{c}</strong> },
  { re: /_([^_\n]+)_/, wrap: (c, k) => <em key={k}>{c}</em> },
  { re: /~([^~\n]+)~/, wrap: (c, k) => <s key={k}>{c}</s> },
];

export function formatWhatsApp(text: string, key = 'f'): ReactNode[] {
  let best: { index: number; length: number; inner: string; rule: (typeof RULES)[number] } | null = null;
  for (const rule of RULES) {
    const m = rule.re.exec(text);
    if (m && (best === null || m.index < best.index)) best = { index: m.index, length: m[0].length, inner: m[1]!, rule };
  }
  if (!best) return text ? [text] : [];
  const before = text.slice(0, best.index);
  const after = text.slice(best.index + best.length);
  return [...(before ? [before] : []), best.rule.wrap(formatWhatsApp(best.inner, `${key}i`), `${key}m`), ...formatWhatsApp(after, `${key}a`)];
}

export function Bubble({ text, media, time }: { text: string; media?: { type: string; caption?: string | undefined; src?: string | undefined; name?: string | undefined } | null; time?: string }) {
  const { me } = useSession();
  return (
    <div className="wa-phone" aria-label="Message preview">
      <div className="wa-bubble">
        {media && (
          <div className="wa-media">
            {media.type === 'image' && media.src ? <img src={media.src} alt={media.caption ?? 'attached image'} /> : <span>{media.type === 'document' ? '📄' : media.type === 'video' ? '🎬' : '🖼'} {media.name ?? media.type}</span>}
          </div>
        )}
        <div className="wa-text">{formatWhatsApp(text)}</div>
        {media?.caption && <div className="wa-text">{formatWhatsApp(media.caption)}</div>}
        <div className="wa-time">{time ?? clock(new Date().toISOString(), me.time_zone)} ✓✓</div>
      </div>
    </div>
  );
}
