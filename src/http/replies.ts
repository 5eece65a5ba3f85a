import type { FastifyReply } from 'fastify';

/**
 * Answer with a rendered page. Pages carry CSRF tokens and personal details, so
 * no cache (shared or the browser's back/forward store) may keep them.
 */
export function html(reply: FastifyReply, body: string, status = 200): FastifyReply {
  return reply.status(status).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(body);
}
