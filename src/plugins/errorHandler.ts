/**
 * The one place that maps errors to HTTP. Client mistakes become a 4xx with a
 * stable code and a human message: JSON `{ error: { code, message, fields? } }`
 * for API callers, an HTML page with an error summary for browsers. 5xx details
 * go to the log only.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { AppError, appError, type FieldError } from '../errors.js';
import { renderErrorPage } from '../views/errorPage.js';

/** Browsers asking for a page get HTML; everything else gets JSON. */
export function wantsHtml(request: FastifyRequest): boolean {
  const accept = request.headers.accept ?? '';
  return accept.includes('text/html') && !accept.startsWith('application/json');
}

/** What to tell people about a field the schema refused: written for them, not for developers. */
const fieldMessages: Record<string, string> = {
  email: 'Enter an email address in the correct format, like name@example.com',
  displayName: 'Enter your name (up to 100 characters)',
  name: 'Enter a name for your passkey (up to 64 characters)',
  placement: 'Choose where to save your passkey: this device, another phone or tablet, or a security key',
  mode: 'Choose how to sign in',
  response: 'The passkey response was missing or could not be read. Try again.',
  confirm: 'Select the box to confirm',
};

function fieldsFromValidation(error: FastifyError): FieldError[] {
  const fields = new Map<string, FieldError>();
  for (const v of (error.validation ?? []).slice(0, 20)) {
    const path = (v.instancePath || '').replace(/^\//, '').split('/');
    const missing = (v.params as { missingProperty?: string } | undefined)?.missingProperty;
    const field = path[0] || missing || 'body';
    if (fields.has(field)) continue;
    const message = fieldMessages[field] ?? (field === 'body' ? 'The request body is missing or not valid' : `${field} is missing or not valid`);
    fields.set(field, { field, message });
  }
  return [...fields.values()];
}

/** Translate anything thrown into an AppError the client may see. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  const e = error as FastifyError;
  if (e?.validation) return appError('validation_failed', undefined, fieldsFromValidation(e));
  switch (e?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return appError('payload_too_large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return appError('unsupported_media_type');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return appError('bad_request', 'The request body is not valid JSON.');
  }
  if (e?.statusCode === 429) return appError('too_many_requests');
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return appError(e.statusCode === 404 ? 'not_found' : 'bad_request');
  }
  return appError('internal');
}

/** What Node reports when the other end closed the connection. */
const CLIENT_GONE_CODES = new Set(['ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE']);

/** The browser closed the connection (navigated away, lost its network) before the answer was sent. */
export function clientWentAway(request: FastifyRequest, error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return request.raw.socket?.destroyed === true || (typeof code === 'string' && CLIENT_GONE_CODES.has(code));
}

export function sendError(request: FastifyRequest, reply: FastifyReply, err: AppError): FastifyReply {
  // A signed-out person opening a settings page is sent to sign in, not shown an error.
  if (err.code === 'not_signed_in' && request.method === 'GET' && wantsHtml(request)) return reply.redirect('/signin');
  reply.status(err.status);
  if (wantsHtml(request)) {
    return reply.type('text/html; charset=utf-8').send(renderErrorPage(request, err));
  }
  const body: { error: { code: string; message: string; fields?: FieldError[] } } = { error: { code: err.code, message: err.message } };
  if (err.fields.length) body.error.fields = err.fields;
  return reply.send(body);
}

export const errorHandlerPlugin = fp(
  async (app: FastifyInstance, opts: { bodyLimit?: number }) => {
    // A body declared larger than the limit is refused first, with 413, before any route's own checks
    // (the console's sign-in and role checks would otherwise answer 401 or 403 without reading it).
    const bodyLimit = opts.bodyLimit;
    if (bodyLimit !== undefined) {
      // A callback hook, not an async one: it runs on every request, and a promise per hook costs microseconds here.
      app.addHook('onRequest', (request, _reply, done) => {
        const declared = request.headers['content-length'];
        done(declared !== undefined && Number(declared) > bodyLimit ? appError('payload_too_large') : undefined);
      });
    }
    app.setErrorHandler((error, request, reply) => {
      const appErr = toAppError(error);
      // The cause is the client's (and nobody may be left to read the answer): logged, but not as a server failure.
      if (clientWentAway(request, error)) request.log.info({ err: error }, 'client went away before the answer');
      else if (appErr.status >= 500) request.log.error({ err: error }, 'request failed');
      else request.log.info({ code: appErr.code }, 'request refused');
      if (reply.sent) return;
      return sendError(request, reply, appErr);
    });
    app.setNotFoundHandler((request, reply) => sendError(request, reply, appError('not_found')));
  },
  { name: 'error-handler' },
);
