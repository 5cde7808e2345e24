/**
 * The API client: every call goes through `api()`, which sends the session cookie, adds the CSRF
 * token to writes, and turns the server's one error shape into an ApiError the pages can show.
 */

export interface ErrorDetail {
  path?: string;
  code?: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: ErrorDetail[] = [],
  ) {
    super(message);
  }
}

let csrfToken: string | null = null;
let onUnauthorized: (() => void) | null = null;

export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

/** Called when the session has ended (a 401 on any call): the app goes back to sign-in. */
export function onSessionEnded(handler: () => void): void {
  onUnauthorized = handler;
}

type Query = Record<string, string | number | boolean | undefined | null | readonly (string | number)[]>;

export function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) {
      if (v.length > 0) params.set(k, v.join(','));
    } else params.set(k, String(v));
  }
  const s = params.toString();
  return s ? `${path}?${s}` : path;
}

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  body?: unknown;
  query?: Query;
  /** A raw body (a CSV file) sent with this content type instead of JSON. */
  raw?: { data: Blob | string; type: string };
  signal?: AbortSignal;
}

export async function api<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const method = opts.method ?? 'GET';
  const headers: Record<string, string> = { accept: 'application/json' };
  let body: BodyInit | undefined;
  if (opts.raw) {
    headers['content-type'] = opts.raw.type;
    body = opts.raw.data;
  } else if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  let res: Response;
  try {
    res = await fetch(withQuery(`/api/v1${path}`, opts.query), { method, headers, body, credentials: 'same-origin', signal: opts.signal ?? null });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, 'NETWORK', 'The server cannot be reached. Check your connection and try again.');
  }
  if (res.status === 204) return null as T;
  const text = await res.text();
  let json: unknown = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (!res.ok) {
    const e = (json as { error?: { code?: string; message?: string; details?: ErrorDetail[] } } | null)?.error;
    const err = new ApiError(res.status, e?.code ?? `HTTP_${res.status}`, e?.message ?? res.statusText, e?.details ?? []);
    if (res.status === 401 && path !== '/auth/login' && onUnauthorized) onUnauthorized();
    throw err;
  }
  return json as T;
}

/** A human sentence for any error a call threw. */
export function messageOf(err: unknown): string {
  if (err instanceof ApiError) {
    const detail = err.details.map((d) => (d.path ? `${d.path}: ${d.message}` : d.message)).join('; ');
    return detail ? `${err.message} (${detail})` : err.message;
  }
  return err instanceof Error ? err.message : String(err);
}

export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

/** GET /campaigns/:id/failures: a page of failed messages, and on the first page every failure by reason. */
export interface CampaignFailure {
  id: number;
  device_id: number;
  device_name: string | null;
  lead_id: number;
  lead_name: string | null;
  phone: string;
  attempts: number;
  error_code: string | null;
  error: string | null;
  failed_at: string | null;
}
export interface CampaignFailures extends Page<CampaignFailure> {
  reasons: { code: string | null; count: number; example: string | null }[] | null;
}

// ---- The shapes the pages read (see /openapi.json) -----------------------------------------

export interface User {
  id: number;
  email: string;
  name: string;
  role: 'admin' | 'member';
  time_zone: string;
  default_country: string | null;
  parent_id: number | null;
  disabled_at: string | null;
  created_at: string;
}

export interface Me extends User {
  tenant_id: number;
  team_member: boolean;
  device_scope: number[] | null;
  csrf_token: string | null;
  opt_out_words: string[] | null;
}

export interface Device {
  id: number;
  name: string;
  phone: string | null;
  transport: string;
  status: string;
  min_delay_ms: number;
  max_delay_ms: number;
  hourly_limit: number | null;
  daily_limit: number | null;
  paused_until: string | null;
  pause_reason: string | null;
  last_seen_at: string | null;
  created_at: string;
  linked: boolean;
}

export interface DeviceStats {
  leads: number;
  pending: number;
  sent_today: number;
  failed_today: number;
  last_sent_at: string | null;
}

export interface LinkState {
  device_id: number;
  state: 'idle' | 'starting' | 'waiting_for_scan' | 'waiting_for_code' | 'linked' | 'failed' | 'expired';
  method: 'qr' | 'pairing_code' | null;
  qr: string | null;
  qr_svg: string | null;
  pairing_code: string | null;
  expires_at: string | null;
  error: { code: string; message: string } | null;
  updated_at: string;
}

export interface Lead {
  id: number;
  name: string;
  phone: string;
  niches: string[];
  status: string;
  triggers: string[];
  source: string | null;
  attributes: Record<string, unknown>;
  device_id: number | null;
  opted_out_at: string | null;
  last_reply_at: string | null;
  created_at: string;
}

export interface LeadImport {
  id: number;
  status: 'queued' | 'running' | 'completed' | 'failed';
  file_name: string | null;
  file_bytes: number;
  bytes_read: number;
  rows_total: number;
  inserted: number;
  updated: number;
  skipped: number;
  failed: number;
  error_code: string | null;
  error: string | null;
  created_at: string;
  finished_at: string | null;
}

export interface ImportError {
  line: number;
  code: string;
  message: string;
  excerpt: string | null;
}

export type CampaignStatus = 'draft' | 'scheduled' | 'running' | 'paused' | 'completed' | 'cancelled';

export interface Audience {
  niches?: string[] | null;
  statuses?: string[] | null;
  device_ids?: number[] | null;
  triggers?: string[] | null;
}

export interface SendWindow {
  start: string;
  end: string;
  days?: string[];
  time_zone?: string;
}

export interface Campaign {
  id: number;
  name: string;
  body: string;
  media: { type: string; url?: string; media_id?: number; caption?: string; filename?: string } | null;
  audience: Audience;
  starts_at: string | null;
  window: SendWindow | null;
  delivery: 'at_most_once' | 'at_least_once';
  mode: 'owned' | 'pool';
  device_hourly_quota: number | null;
  device_daily_quota: number | null;
  daily_limit: number | null;
  delay: { min_seconds: number; max_seconds: number } | null;
  status: CampaignStatus;
  audience_size: number | null;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  counts?: Record<string, number>;
}

export interface Summary {
  total: number;
  pending: number;
  sent: number;
  delivered: number;
  read: number;
  failed: number;
  cancelled: number;
  other: number;
}

export interface CampaignStats {
  campaign_id: number;
  status: CampaignStatus;
  mode: 'owned' | 'pool';
  audience_size: number | null;
  totals: Summary;
  queued: number;
  devices: (Summary & { device_id: number })[];
}

export interface Forecast {
  messages: number;
  devices: number;
  starts_at: string;
  finishes_at: string | null;
  per_device: { device_id: number; name: string; messages: number; finishes_at: string | null }[];
  exact: boolean;
  notes: string[];
}

export interface Preview {
  data: { lead_id: number; name: string; phone: string; text: string }[];
}

export interface Sequence {
  id: number;
  name: string;
  trigger: string;
  window: SendWindow | null;
  next_sequence_id: number | null;
  status: 'active' | 'paused';
  reentry: 'never' | 'after_completion';
  on_failure: 'continue' | 'stop';
  exit_on_reply: boolean;
  steps: number;
  enrollments?: { active: number; paused: number; completed: number; exited: number };
}

export interface Step {
  id: number;
  sequence_id: number;
  position: number;
  delay: { days: number; hours: number; minutes: number };
  send_time: string | null;
  body: string;
}

export interface SequenceProgress {
  sequence_id: number;
  status: 'active' | 'paused';
  enrollments: { total: number; active: number; paused: number; completed: number; exited: number };
  exit_reasons: Record<string, number>;
  messages: Record<string, number>;
  percent_complete: number;
  steps: { step_id: number; position: number; reached: number; active: number; paused: number; exited: number; messages?: Record<string, number> }[];
}

export interface ApiToken {
  id: number;
  name: string;
  prefix: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface Webhook {
  id: number;
  url: string;
  events: string[];
  description: string;
  active: boolean;
  created_at: string;
}

export interface Member extends User {
  device_ids: number[];
}

export type DeviceState = 'online' | 'offline' | 'restricted' | 'paused' | 'logged_out' | 'unlinked';
export interface Today {
  sent: number;
  delivered: number;
  read: number;
  replies: number;
  failed: number;
}
export interface Outbox {
  pending: number;
  held: number;
  sending: number;
}
export interface Minute {
  minute: string;
  sent: number;
}

export interface CampaignProgress {
  id: number;
  name: string;
  status: string;
  mode: string;
  audience_size: number | null;
  started_at: string | null;
  total: number;
  waiting: number;
  sending: number;
  sent: number;
  delivered: number;
  read: number;
  failed: number;
  other: number;
}

/** GET /dashboard */
export interface DashboardView {
  time_zone: string;
  day_start: string;
  generated_at: string;
  today: Today;
  devices: Record<DeviceState, number>;
  outbox: Outbox;
  campaigns: CampaignProgress[];
  sequences: { id: number; name: string; trigger: string; active: number; paused: number; completed: number; exited: number }[];
  throughput: Minute[];
}

/** The live stream's `figures` event, every few seconds. */
export interface LiveFigures {
  at: string;
  today: Today;
  devices: Record<DeviceState, number>;
  outbox: Outbox;
  sent_last_minute: number;
  sent_this_minute: number;
}

export interface Failure {
  message_id: number;
  device_id: number;
  device_name: string | null;
  lead_id: number;
  lead_name: string | null;
  phone: string;
  campaign_id: number | null;
  enrollment_id: number | null;
  code: string | null;
  reason: string | null;
  at: string;
}

/** GET /monitoring */
export interface MonitoringView {
  generated_at: string;
  outbox: Outbox;
  throughput: Minute[];
  devices: {
    id: number;
    name: string;
    phone: string | null;
    status: string;
    state: DeviceState;
    paused_until: string | null;
    restricted_until: string | null;
    last_seen_at: string | null;
    sent_today: number;
    failed_today: number;
    last_error: { code: string | null; message: string | null; at: string } | null;
  }[];
  recent_errors: Failure[];
}

/** The throughput series moved on by a `figures` event: its minute is the series' last or the next. */
export function advanceThroughput(points: Minute[], f: LiveFigures): Minute[] {
  const minute = new Date(Math.floor(new Date(f.at).getTime() / 60_000) * 60_000).toISOString();
  const out = points.slice();
  const last = out[out.length - 1];
  if (last && new Date(last.minute).getTime() === new Date(minute).getTime()) {
    out[out.length - 1] = { minute: last.minute, sent: f.sent_this_minute };
  } else {
    if (last) out[out.length - 1] = { minute: last.minute, sent: Math.max(last.sent, f.sent_last_minute) };
    out.push({ minute, sent: f.sent_this_minute });
  }
  return out.slice(-60);
}
