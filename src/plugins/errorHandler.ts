/**
 * The one place that maps errors to HTTP. Client mistakes become a 4xx with a
 * stable code and a human message: JSON `{ error: { code, message, fields? } }`
 * for API callers, an HTML page with an error summary for browsers. 5xx details
 * go to the log only.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { AppError, appError, errorCatalogue, validationFailed, type FieldError } from '../errors.js';
import { nationalIdFormat } from '../users/nationalId.js';
import { EMAIL_ADDRESS_FORMAT_MESSAGE } from '../users/emailAddress.js';
import { renderErrorPage } from '../views/errorPage.js';
import { html } from '../http/replies.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Answer errors in JSON whatever the Accept header says (the admin API and SCIM: there are no pages there). */
    jsonOnly?: boolean;
    /**
     * On JSON API routes: what each field is called in validation messages, in place of the pages' labels and
     * messages (on the pages `name` is a passkey's name). Fields without a label here get their part's message.
     */
    fieldLabels?: Record<string, string>;
  }
}

/** Browsers asking for a page get HTML; everything else, and every route that is JSON only, gets JSON. */
export function wantsHtml(request: FastifyRequest): boolean {
  if (request.routeOptions.config?.jsonOnly) return false;
  const accept = request.headers.accept ?? '';
  return accept.includes('text/html') && !accept.startsWith('application/json');
}

/** What to tell people about a field the schema refused: written for them, not for developers. */
const fieldMessages: Record<string, string> = {
  email: EMAIL_ADDRESS_FORMAT_MESSAGE,
  displayName: 'Enter your name (up to 100 characters)',
  name: 'Enter a name for your passkey (up to 64 characters)',
  placement: 'Choose where to save your passkey: this device, another phone or tablet, or a security key',
  mode: 'Choose how to sign in',
  response: 'The passkey response was missing or could not be read. Try again.',
  confirm: 'Select the box to confirm',
  _csrf: errorCatalogue.csrf_failed.message,
  before: 'That link to older events is not valid. Go back to the newest events and try again',
  page: 'That page number is not valid. Go back to the first page and try again',
};

/**
 * What each field is called on the pages that send it, so a message about it names it as people know it ("Email
 * address must be 254 characters or fewer"), never by its name in the code. Per part of the request: the audit log's
 * `subject` filter is a person, a template's `subject` is an email's subject line. The national identifier's label is
 * configured (LATCHKEY_NATIONAL_ID_LABEL) and added where the request is known.
 */
export const fieldLabels: { body: Record<string, string>; querystring: Record<string, string> } = {
  body: {
    email: 'Email address',
    displayName: 'Your name',
    name: 'Name',
    code: 'Code',
    password: 'Password',
    confirmPassword: 'Confirm password',
    placement: 'Where to save your passkey',
    type: 'Authenticator type',
    captcha: 'The check that you are a person',
    confirm: 'The confirmation box',
    status: 'Status',
    roles: 'Roles',
    subject: 'Subject',
    body: 'Email text',
    template: 'Email template',
    method: 'How to send it',
    redirectUris: 'Redirect URIs',
    logoutUris: 'Logout URIs',
    clientType: 'Type of service',
    firstParty: 'First-party service',
    aal: 'Assurance level',
    mode: 'How to sign in',
    response: 'The passkey response',
    _csrf: 'The form',
  },
  querystring: {
    q: 'Name, email address or user ID',
    status: 'Status',
    page: 'Page number',
    event: 'Event',
    actor: 'By (email address)',
    subject: 'For (email address)',
    from: 'From date',
    to: 'To date',
    email: 'Email address',
  },
};

/** For a part of the request whose fields people never type (the address's own path, a page's flags). */
const partMessages: Record<string, string> = {
  params: 'The address of this page is not right. Check it, or go back and try again',
  querystring: 'The address of this page has something in it that is not right. Check it, or go back and try again',
  headers: 'The request could not be understood',
  body: 'Some of the information sent was missing or not valid',
};

/** One validation failure as a sentence about the field, by what the schema expected. */
function messageFor(v: { keyword?: string; params?: Record<string, unknown> }, label: string, field: string, messages: Record<string, string> = fieldMessages): string {
  const limit = v.params?.limit;
  switch (v.keyword) {
    case 'maxLength':
      return `${label} must be ${limit} characters or fewer`;
    case 'maxItems':
      return `${label} can have at most ${limit}`;
    case 'maximum':
    case 'exclusiveMaximum':
      return `${label} must be a smaller number`;
    case 'minimum':
    case 'exclusiveMinimum':
      return `${label} must be a larger number`;
    case 'required':
      return messages[field] ?? `${label} is missing`;
    default:
      return messages[field] ?? `${label} is not valid`;
  }
}

function fieldsFromValidation(error: FastifyError, extraLabels: Record<string, string> = {}, routeLabels?: Record<string, string>): FieldError[] {
  const part = (error as { validationContext?: string }).validationContext ?? 'body';
  const labels: Record<string, string> = routeLabels
    ? routeLabels
    : { ...(part === 'body' ? fieldLabels.body : part === 'querystring' ? fieldLabels.querystring : {}), ...(part === 'body' ? extraLabels : {}) };
  const fields = new Map<string, FieldError>();
  for (const v of (error.validation ?? []).slice(0, 20)) {
    const path = (v.instancePath || '').replace(/^\//, '').split('/');
    const params = v.params as { missingProperty?: string; requiredProperties?: string[] } | undefined;
    const missing = params?.missingProperty ?? params?.requiredProperties?.[0];
    const field = path[0] || missing || part;
    if (fields.has(field)) continue;
    const label = labels[field];
    // A field without a label gets the message for its part of the request: never the name it has in the code.
    const message = label ? messageFor(v as { keyword?: string; params?: Record<string, unknown> }, label, field, routeLabels ? {} : fieldMessages) : partMessages[part] ?? partMessages.body!;
    fields.set(field, { field, message });
  }
  return [...fields.values()];
}

/** Translate anything thrown into an AppError the client may see. */
export function toAppError(error: unknown, request?: FastifyRequest): AppError {
  if (error instanceof AppError) return error;
  const e = error as FastifyError;
  if (e?.validation) {
    const routeLabels = request?.routeOptions.config?.fieldLabels;
    if (routeLabels) return validationFailed(fieldsFromValidation(e, {}, routeLabels));
    const config = request?.server.latchkey?.config;
    return appError('validation_failed', undefined, fieldsFromValidation(e, config ? { nationalId: nationalIdFormat(config).label } : {}));
  }
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

/**
 * What Node reports when the other end closed the connection: a request body cut off (`IncomingMessage` emits
 * "aborted" with ECONNRESET, and Fastify's body parser passes it on), a write to a closed socket (EPIPE), a stream
 * ended early. Classified by the error alone: a closed socket says nothing about why a handler failed, and a real
 * server failure that happens after the browser left must still be logged as one.
 */
const CLIENT_GONE_CODES = new Set(['ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE']);

/** The error is the browser closing the connection (navigated away, lost its network) before the answer was sent. */
export function clientWentAway(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && CLIENT_GONE_CODES.has(code);
}

export function sendError(request: FastifyRequest, reply: FastifyReply, err: AppError): FastifyReply {
  // A signed-out person opening a settings page is sent to sign in, not shown an error.
  if (err.code === 'not_signed_in' && request.method === 'GET' && wantsHtml(request)) return reply.redirect('/signin');
  reply.status(err.status);
  if (wantsHtml(request)) return html(reply, renderErrorPage(request, err), err.status);
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
      // A route may declare a larger limit of its own (the bulk-import upload); every other route has the app's.
      app.addHook('onRequest', (request, _reply, done) => {
        const declared = request.headers['content-length'];
        const limit = request.routeOptions.bodyLimit ?? bodyLimit;
        if (declared === undefined || Number(declared) <= limit) return done();
        done(limit === bodyLimit ? appError('payload_too_large') : appError('payload_too_large', `The request is too large (the limit is ${Math.round(limit / (1024 * 1024))} MB).`));
      });
    }
    app.setErrorHandler((error, request, reply) => {
      const appErr = toAppError(error, request);
      // The cause is the client's (and nobody may be left to read the answer): logged, but not as a server failure.
      if (clientWentAway(error)) request.log.info({ err: error }, 'client went away before the answer');
      else if (appErr.status >= 500) request.log.error({ err: error }, 'request failed');
      else request.log.info({ code: appErr.code }, 'request refused');
      if (reply.sent) return;
      return sendError(request, reply, appErr);
    });
    app.setNotFoundHandler((request, reply) => sendError(request, reply, appError('not_found')));
  },
  { name: 'error-handler' },
);
