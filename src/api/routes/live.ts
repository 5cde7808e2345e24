/**
 * GET /api/v1/live: the signed-in viewer's live events as Server-Sent Events.
 *
 *   event: <type>\ndata: <json>\n\n     every live event of the viewer's tenant (services/live/channel.ts;
 *                                      a team member: only those about its devices)
 *   event: figures\ndata: <json>\n\n   at once, then every `figuresMs`: today's numbers, devices by
 *                                      state, outbox depth, sends this and last minute
 *   : heartbeat\n\n                    every `heartbeatMs`, so proxies keep an idle stream open
 *
 * Each stream holds one LISTEN subscription, dropped when the client goes away. The credential is
 * looked at again with every `figures` tick (it is cached, so that is cheap): a signed-out session,
 * a revoked token or a changed device assignment reaches an open stream within one tick.
 */
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { actorOf, SESSION_COOKIE } from '../auth.js';
import { errorSchema } from '../errors.js';
import { security } from '../schemas.js';
import type { Api, Services } from '../types.js';
import type { Actor } from '../../services/actor.js';
import { listenLive, visibleTo, type LiveEvent } from '../../services/live/channel.js';

export interface LiveOptions {
  /** How often `figures` is sent (FLEETCAST_LIVE_FIGURES_MS); default 2 s. */
  figuresMs?: number | undefined;
  /** How often an idle stream gets a comment line; default 15 s. */
  heartbeatMs?: number | undefined;
}

/** The same credential the request came with, resolved again (null: no longer valid). */
async function resolveAgain(s: Services, req: FastifyRequest): Promise<Actor | null> {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    return m ? ((await s.auth.byToken(m[1]!))?.actor ?? null) : null;
  }
  const secret = req.cookies[SESSION_COOKIE];
  return secret ? ((await s.auth.bySession(secret))?.actor ?? null) : null;
}

const MAX_UNSENT_BYTES = 1_048_576;

export function frame(type: string, data: unknown): string {
  // JSON.stringify never emits a raw newline, so one data line always carries the whole value.
  return `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
}

export function liveRoutes(app: Api, s: Services, o: LiveOptions = {}): void {
  const figuresMs = o.figuresMs ?? 2000;
  const heartbeatMs = o.heartbeatMs ?? 15_000;
  // Open streams never go idle, so the server's close would wait for them: it ends them first.
  const open = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const close of [...open]) close();
  });
  app.get('/api/v1/live', {
    schema: {
      tags: ['live'],
      summary: 'Live events (Server-Sent Events)',
      description:
        'A `text/event-stream` of the tenant’s live events (`device.link`, `device.status`, `device.restricted`, ' +
        '`campaign.state`, `campaign.progress`, `import.progress`, ...; a team member gets only those about its devices), ' +
        `a \`figures\` event at once and every ${figuresMs} ms, and a comment line every ${heartbeatMs} ms.`,
      security,
      produces: ['text/event-stream'],
      response: { 200: z.string().describe('a stream of `event:` and `data:` lines'), 401: errorSchema },
    },
    handler: async (req, reply) => {
      let viewer = actorOf(req);
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        // nginx and similar proxies would otherwise hold the events back in their buffers.
        'x-accel-buffering': 'no',
        'x-request-id': req.id,
      });
      res.write('retry: 3000\n\n');
      let closed = false;
      let unlisten: (() => Promise<void>) | null = null;
      const write = (chunk: string) => {
        if (closed) return;
        // A client that stopped reading would make the process hold every event for it: past a
        // megabyte unsent, the stream ends and the browser's EventSource reconnects afresh.
        if (res.writableLength > MAX_UNSENT_BYTES) {
          req.log.warn({ unsent: res.writableLength }, 'live stream not read: closed');
          close();
          return;
        }
        res.write(chunk);
      };
      const onEvent = (e: LiveEvent) => {
        if (visibleTo(e, viewer)) write(frame(e.type, e.data));
      };
      let ticking = false;
      const tick = async () => {
        if (ticking || closed) return;
        ticking = true;
        try {
          const again = await resolveAgain(s, req);
          if (!again) {
            write(frame('signed_out', { code: 'UNAUTHENTICATED', message: 'the session or token is no longer valid' }));
            close();
            return;
          }
          viewer = again;
          write(frame('figures', await s.dashboard.figures(viewer)));
        } catch (err) {
          req.log.warn({ err }, 'live figures failed');
        } finally {
          ticking = false;
        }
      };
      const figures = setInterval(() => void tick(), figuresMs);
      const heartbeat = setInterval(() => write(': heartbeat\n\n'), heartbeatMs);
      const close = () => {
        if (closed) return;
        closed = true;
        open.delete(close);
        clearInterval(figures);
        clearInterval(heartbeat);
        const off = unlisten;
        unlisten = null;
        if (off) off().catch((err: unknown) => req.log.warn({ err }, 'live unlisten failed'));
        res.end();
      };
      open.add(close);
      res.on('close', close);
      req.raw.on('close', close);
      try {
        const off = await listenLive(s.db, onEvent);
        if (closed) await off();
        else unlisten = off;
      } catch (err) {
        req.log.error({ err }, 'live stream could not subscribe');
        close();
        return;
      }
      await tick();
    },
  });
}
