/**
 * Webhook endpoints in the console (RA Managers): add one with the events it receives (its signing secret shown
 * once), change its events, pause and resume it, replace its secret, send a test event, delete it; its page lists
 * recent deliveries with the receiver's answers, and "Send again" for one that failed. Every change is audited in
 * its transaction.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { audit } from '../../audit.js';
import { randomToken } from '../../crypto.js';
import type { WebhookEndpoint } from '../../db/schema.js';
import { newMessageId } from '../../db/persisters/webhooks.js';
import { appError, type FieldError } from '../../errors.js';
import { html } from '../../http/replies.js';
import { Csrf, CsrfBody, Id } from '../../http/schemas.js';
import { renderPage } from '../../views/render.js';
import { checkEndpointUrl } from '../../webhooks/checkEndpointUrl.js';
import { signedHeaders, webhookSecretContext } from '../../webhooks/deliverWebhooks.js';
import { isWebhookEventType, WEBHOOK_TEST_EVENT, type WebhookEventType } from '../../webhooks/events.js';
import { agentOf } from '../guard.js';
import { WebhookDeletePage, WebhookDeliveryPage, WebhookEndpointPage, WebhookFormPage, WebhookSecretPage, WebhooksPage } from '../webhookViews.js';
import { adminContext as ctx } from './shared.js';

/** A Standard Webhooks secret: `whsec_` and base64 of 24 random bytes (the spec allows 24 to 64). */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

const EndpointParams = Type.Object({ endpointId: Id });
const DeliveryParams = Type.Object({ endpointId: Id, deliveryId: Id });
/** One checkbox ticked arrives as a string, several as an array. */
const Events = Type.Optional(Type.Union([Type.String({ maxLength: 64 }), Type.Array(Type.String({ maxLength: 64 }), { maxItems: 32 })]));
const AddBody = Type.Object({ ...Csrf, url: Type.Optional(Type.String({ maxLength: 4000 })), description: Type.Optional(Type.String({ maxLength: 2000 })), events: Events });
const EditBody = Type.Object({ ...Csrf, description: Type.Optional(Type.String({ maxLength: 2000 })), events: Events });
const DeleteBody = Type.Object({ ...Csrf, confirm: Type.Optional(Type.String({ maxLength: 10 })) });
const Done = Type.Object({ done: Type.Optional(Type.String({ maxLength: 32 })) });

const DESCRIPTION_MAX = 200;

const flashes: Record<string, string> = {
  saved: 'Events saved.',
  paused: 'The endpoint is paused: nothing is sent to it until it is resumed. Events are kept for it meanwhile.',
  resumed: 'The endpoint is resumed: what waited is being sent.',
  'not-changed': 'Nothing was changed: someone else changed it first.',
  test: 'A test event is on its way. Reload this page to see the answer.',
  resent: 'The delivery will be sent again now. Reload this page to see the answer.',
  deleted: 'The endpoint has been deleted.',
};

/** The events ticked, each one known; anything else is a field error. */
function readEvents(raw: string | string[] | undefined): { events: WebhookEventType[]; error?: FieldError } {
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  const events = [...new Set(list)].filter(isWebhookEventType);
  if (events.length !== new Set(list).size) return { events, error: { field: 'events', message: 'Choose events from the list' } };
  if (!events.length) return { events, error: { field: 'events', message: 'Choose at least one event to send' } };
  return { events };
}

function readDescription(raw: string | undefined): { description: string; error?: FieldError } {
  const description = (raw ?? '').trim();
  return description.length > DESCRIPTION_MAX ? { description, error: { field: 'description', message: `The description must be ${DESCRIPTION_MAX} characters or fewer` } } : { description };
}

export async function consoleWebhooksRoutes(app: FastifyInstance) {
  const { config, store, now, secretBox } = app.latchkey;
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const permission = 'webhooks.manage';

  async function loadEndpoint(id: string): Promise<WebhookEndpoint> {
    const endpoint = await store.webhooks.findEndpoint(id);
    if (!endpoint) throw appError('not_found', 'That webhook endpoint was not found. It may have been deleted.');
    return endpoint;
  }

  async function endpointPage(request: FastifyRequest, endpoint: WebhookEndpoint, extra: { flash?: string | null; errors?: FieldError[]; values?: { description: string; events: string[] } } = {}) {
    const owner = endpoint.created_by ? await store.users.findById(endpoint.created_by) : undefined;
    return renderPage(<WebhookEndpointPage {...ctx(request)} endpoint={endpoint} owner={owner} deliveries={await store.webhooks.listDeliveries(endpoint.id)} now={now()} errors={extra.errors ?? []} flash={extra.flash} values={extra.values} />);
  }

  r.get('/admin/webhooks', { config: { permission }, schema: { querystring: Done } }, async (request, reply) => {
    const flash = request.query.done ? flashes[request.query.done] : null;
    return html(reply, renderPage(<WebhooksPage {...ctx(request)} endpoints={await store.webhooks.listEndpoints()} pending={await store.webhooks.countPending()} flash={flash} />));
  });

  r.get('/admin/webhooks/new', { config: { permission } }, async (request, reply) => {
    return html(reply, renderPage(<WebhookFormPage {...ctx(request)} values={{ url: '', description: '', events: [] }} errors={[]} />));
  });

  r.post('/admin/webhooks/new', { config: { permission }, schema: { body: AddBody } }, async (request, reply) => {
    const url = checkEndpointUrl(request.body.url ?? '', config);
    const { description, error: descriptionError } = readDescription(request.body.description);
    const { events, error: eventsError } = readEvents(request.body.events);
    const errors: FieldError[] = [];
    if ('error' in url) errors.push({ field: 'url', message: url.error });
    if (descriptionError) errors.push(descriptionError);
    if (eventsError) errors.push({ ...eventsError, field: `events-${events[0] ?? 'user.created'}` });
    if (errors.length) {
      const values = { url: (request.body.url ?? '').trim(), description, events };
      return html(reply, renderPage(<WebhookFormPage {...ctx(request)} values={values} errors={errors} />), 400);
    }
    const id = randomToken(12);
    const secret = newWebhookSecret();
    const t = now();
    const endpoint = { id, url: (url as { url: string }).url, description, events: JSON.stringify(events), secret: secretBox.seal(secret, webhookSecretContext(id)), created_by: agentOf(request).user.id, created_at: t };
    await store.transaction(async (tx) => {
      await tx.webhooks.insertEndpoint(endpoint);
      await audit(app, request, { event: 'webhook.added', detail: { endpointId: id, url: endpoint.url, events } }, tx);
    });
    // Shown here once, never again: only the sealed secret is kept. Reloading this answer posts the form again.
    return html(reply, renderPage(<WebhookSecretPage {...ctx(request)} endpoint={(await store.webhooks.findEndpoint(id))!} secret={secret} added />), 201);
  });

  r.get('/admin/webhooks/:endpointId', { config: { permission }, schema: { params: EndpointParams, querystring: Done } }, async (request, reply) => {
    const endpoint = await loadEndpoint(request.params.endpointId);
    return html(reply, await endpointPage(request, endpoint, { flash: request.query.done ? flashes[request.query.done] : null }));
  });

  r.post('/admin/webhooks/:endpointId', { config: { permission }, schema: { params: EndpointParams, body: EditBody } }, async (request, reply) => {
    const endpoint = await loadEndpoint(request.params.endpointId);
    const { description, error: descriptionError } = readDescription(request.body.description);
    const { events, error: eventsError } = readEvents(request.body.events);
    const errors = [descriptionError, eventsError && { ...eventsError, field: `events-${events[0] ?? 'user.created'}` }].filter((e): e is FieldError => !!e);
    if (errors.length) return html(reply, await endpointPage(request, endpoint, { errors, values: { description, events } }), 400);
    await store.transaction(async (tx) => {
      await tx.webhooks.updateEndpoint(endpoint.id, { events: JSON.stringify(events), description }, now());
      await audit(app, request, { event: 'webhook.changed', detail: { endpointId: endpoint.id, from: JSON.parse(endpoint.events) as unknown, to: events } }, tx);
    });
    return reply.redirect(`/admin/webhooks/${endpoint.id}?done=saved`, 303);
  });

  for (const action of ['pause', 'resume'] as const) {
    r.post(`/admin/webhooks/:endpointId/${action}`, { config: { permission }, schema: { params: EndpointParams, body: CsrfBody } }, async (request, reply) => {
      const endpoint = await loadEndpoint(request.params.endpointId);
      const changed = await store.transaction(async (tx) => {
        const done = action === 'pause' ? await tx.webhooks.pause(endpoint.id, now()) : await tx.webhooks.resume(endpoint.id, now());
        if (done) await audit(app, request, { event: action === 'pause' ? 'webhook.paused' : 'webhook.resumed', detail: { endpointId: endpoint.id, url: endpoint.url } }, tx);
        return done;
      });
      return reply.redirect(`/admin/webhooks/${endpoint.id}?done=${changed ? (action === 'pause' ? 'paused' : 'resumed') : 'not-changed'}`, 303);
    });
  }

  r.post('/admin/webhooks/:endpointId/rotate', { config: { permission }, schema: { params: EndpointParams, body: CsrfBody } }, async (request, reply) => {
    const endpoint = await loadEndpoint(request.params.endpointId);
    const secret = newWebhookSecret();
    await store.transaction(async (tx) => {
      await tx.webhooks.updateEndpoint(endpoint.id, { secret: secretBox.seal(secret, webhookSecretContext(endpoint.id)) }, now());
      await audit(app, request, { event: 'webhook.secret_rotated', detail: { endpointId: endpoint.id, url: endpoint.url } }, tx);
    });
    return html(reply, renderPage(<WebhookSecretPage {...ctx(request)} endpoint={endpoint} secret={secret} />));
  });

  r.post('/admin/webhooks/:endpointId/test', { config: { permission }, schema: { params: EndpointParams, body: CsrfBody } }, async (request, reply) => {
    const endpoint = await loadEndpoint(request.params.endpointId);
    const t = now();
    const agent = agentOf(request).user;
    const payload = JSON.stringify({ type: WEBHOOK_TEST_EVENT, timestamp: new Date(t).toISOString(), data: { endpoint: { id: endpoint.id }, actor: { id: agent.id, email: agent.email, name: agent.display_name } } });
    await store.transaction(async (tx) => {
      const id = newMessageId();
      await tx.webhooks.insertDelivery({ id, endpoint_id: endpoint.id, event_type: WEBHOOK_TEST_EVENT, payload, created_at: t });
      await audit(app, request, { event: 'webhook.test_sent', detail: { endpointId: endpoint.id, deliveryId: id } }, tx);
    });
    return reply.redirect(`/admin/webhooks/${endpoint.id}?done=test`, 303);
  });

  r.get('/admin/webhooks/:endpointId/delete', { config: { permission }, schema: { params: EndpointParams } }, async (request, reply) => {
    return html(reply, renderPage(<WebhookDeletePage {...ctx(request)} endpoint={await loadEndpoint(request.params.endpointId)} />));
  });

  r.post('/admin/webhooks/:endpointId/delete', { config: { permission }, schema: { params: EndpointParams, body: DeleteBody } }, async (request, reply) => {
    const endpoint = await loadEndpoint(request.params.endpointId);
    if (request.body.confirm !== 'yes') {
      return html(reply, renderPage(<WebhookDeletePage {...ctx(request)} endpoint={endpoint} error="Select the box to confirm you want to delete the endpoint" />), 400);
    }
    await store.transaction(async (tx) => {
      if (!(await tx.webhooks.deleteEndpoint(endpoint.id))) throw appError('not_found', 'That webhook endpoint was not found. It may have been deleted.');
      await audit(app, request, { event: 'webhook.deleted', detail: { endpointId: endpoint.id, url: endpoint.url } }, tx);
    });
    return reply.redirect('/admin/webhooks?done=deleted', 303);
  });

  r.get('/admin/webhooks/:endpointId/deliveries/:deliveryId', { config: { permission }, schema: { params: DeliveryParams } }, async (request, reply) => {
    const endpoint = await loadEndpoint(request.params.endpointId);
    const delivery = await store.webhooks.findDelivery(request.params.deliveryId);
    if (!delivery || delivery.endpoint_id !== endpoint.id) throw appError('not_found', 'That delivery was not found.');
    // Signed now, so the command below passes a receiver's five-minute timestamp check when run soon.
    const headers = signedHeaders(secretBox.open(endpoint.secret, webhookSecretContext(endpoint.id)), delivery.id, delivery.payload, new Date());
    return html(reply, renderPage(<WebhookDeliveryPage {...ctx(request)} endpoint={endpoint} delivery={delivery} headers={headers} now={now()} />));
  });

  r.post('/admin/webhooks/:endpointId/deliveries/:deliveryId/retry', { config: { permission }, schema: { params: DeliveryParams, body: CsrfBody } }, async (request, reply) => {
    const endpoint = await loadEndpoint(request.params.endpointId);
    const retried = await store.transaction(async (tx) => {
      if (!(await tx.webhooks.retry(request.params.deliveryId, endpoint.id, now()))) return false;
      await audit(app, request, { event: 'webhook.resent', detail: { endpointId: endpoint.id, deliveryId: request.params.deliveryId } }, tx);
      return true;
    });
    return reply.redirect(`/admin/webhooks/${endpoint.id}?done=${retried ? 'resent' : 'not-changed'}`, 303);
  });
}
