/**
 * SCIM 2.0 (RFC 7643 / 7644) at /scim/v2, for identity providers (Entra ID, Okta) that provision people into
 * Latchkey. SCIMMY speaks the protocol (scimProtocol.ts); scimUsers.ts maps it onto Latchkey's users. The same
 * bearer gate as the admin API (src/api/guard.ts) stands first, and every answer, errors included, is
 * `application/scim+json` in SCIM's shapes.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import SCIMMY from 'scimmy';
import { ANY_ROLE } from '../admin/guard.js';
import { guardApi } from '../api/guard.js';
import { normalisePatchOp, normaliseScimUser } from './normaliseScimRequest.js';
import { SCIM_CONTENT_TYPE, scimError, sendScimError } from './scimErrors.js';
import { callScimmy, declareScim, SCIM_BASE_PATH } from './scimProtocol.js';
import { findScimUsers, SCIM_MAX_RESULTS, type ScimContext, toScimUser, USER_ID_PATTERN } from './scimUsers.js';

const Id = Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }) });

/** attributes and excludedAttributes (RFC 7644 §3.4.2.5): comma-separated attribute paths. */
const Projection = {
  attributes: Type.Optional(Type.String({ minLength: 1, maxLength: 1000 })),
  excludedAttributes: Type.Optional(Type.String({ minLength: 1, maxLength: 1000 })),
};

const ListQuery = Type.Object({
  filter: Type.Optional(Type.String({ minLength: 1, maxLength: 1000 })),
  // RFC 7644 §3.4.2.4: a startIndex below 1 means 1, and a count above the maximum means the maximum.
  startIndex: Type.Optional(Type.Integer({ minimum: -2147483648, maximum: 2147483647 })),
  count: Type.Optional(Type.Integer({ minimum: -2147483648, maximum: 2147483647 })),
  ...Projection,
});

/** SCIMMY checks the SCIM shape; the schema only bounds what reaches it (the app's 64 KiB body limit applies too). */
const ScimBody = Type.Object({}, { additionalProperties: true, maxProperties: 200, description: 'A SCIM resource or PatchOp message (RFC 7643, RFC 7644 §3.5.2)' });
const ScimResponse = Type.Object({ schemas: Type.Array(Type.String()) }, { additionalProperties: true, description: 'A SCIM resource, ListResponse or Error (RFC 7644)' });

/**
 * SCIMMY's objects as plain JSON, with meta.location made absolute on this deployment's origin (RFC 7643 §3.1), and
 * `schemas` on every resource: SCIMMY drops it when `attributes` asks for others, but RFC 7643 §3 returns it always.
 */
function toBody(value: unknown, origin: string): Record<string, unknown> {
  const body = JSON.parse(JSON.stringify(value)) as Record<string, unknown>;
  const complete = (resource: Record<string, unknown>) => {
    const meta = resource.meta as { location?: unknown } | undefined;
    if (meta && typeof meta.location === 'string' && meta.location.startsWith('/')) meta.location = origin + meta.location;
    if (!resource.schemas && typeof resource.id === 'string') resource.schemas = [SCIMMY.Schemas.User.definition.id];
  };
  if (Array.isArray(body.Resources)) (body.Resources as Record<string, unknown>[]).forEach(complete);
  else complete(body);
  return body;
}

export async function scimRoutes(app: FastifyInstance) {
  guardApi(app, { area: 'scim' });
  const ScimUser = declareScim();
  const origin = app.latchkey.config.origin.replace(/\/$/, '');

  // Provisioning clients send application/scim+json (RFC 7644 §3.1); application/json is the app's own parser.
  app.addContentTypeParser('application/scim+json', { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'));
  app.setErrorHandler((error, request, reply) => sendScimError(error, request, reply));

  const context = (request: FastifyRequest, mode: ScimContext['mode']): ScimContext => ({ app, request, mode });
  const send = (reply: FastifyReply, status: number, value: unknown) => reply.status(status).type(SCIM_CONTENT_TYPE).send(toBody(value, origin));
  const projection = (q: { attributes?: string; excludedAttributes?: string }) => ({
    ...(q.attributes !== undefined ? { attributes: q.attributes } : {}),
    ...(q.excludedAttributes !== undefined ? { excludedAttributes: q.excludedAttributes } : {}),
  });
  /** SCIMMY's resource for one user; an id Latchkey never makes is a 404 before it reaches SCIMMY's id filter. */
  const userResource = (id: string, query: { attributes?: string; excludedAttributes?: string } = {}) => {
    if (!USER_ID_PATTERN.test(id)) throw scimError(404, undefined, `There is no user with id ${JSON.stringify(id)}.`);
    return new ScimUser(id, projection(query));
  };
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const responses = (status: number) => ({ [status]: ScimResponse, '4xx': ScimResponse, '5xx': ScimResponse });

  r.get(`${SCIM_BASE_PATH}/Users`, { config: { permission: 'users.view' }, schema: { querystring: ListQuery, response: responses(200) } }, async (request, reply) => {
    const q = request.query;
    const ctx = context(request, 'read');
    const startIndex = Math.max(q.startIndex ?? 1, 1);
    const count = Math.min(Math.max(q.count ?? SCIM_MAX_RESULTS, 0), SCIM_MAX_RESULTS);
    const list = await callScimmy(ctx, async () => {
      // SCIMMY parses the filter and the projection (400 invalidFilter when they do not parse).
      const resource = new ScimUser(undefined, { ...(q.filter !== undefined ? { filter: q.filter } : {}), ...projection(q) });
      const { users, total } = await findScimUsers(ctx, resource.filter, startIndex, count);
      const resources = users.map((user) => new SCIMMY.Schemas.User(toScimUser(user), 'out', ScimUser.basepath() as string, resource.attributes));
      // SCIMMY's ListResponse slices what it is given as if it were every match; this is one page already, so it is
      // given as a page starting at 1 and told the real startIndex after.
      const page = new SCIMMY.Messages.ListResponse(resources, { startIndex: 1, itemsPerPage: resources.length, totalResults: total });
      page.startIndex = startIndex;
      return page;
    });
    return send(reply, 200, list);
  });

  r.post(`${SCIM_BASE_PATH}/Users`, { config: { permission: 'users.add' }, schema: { body: ScimBody, querystring: Type.Object(Projection), response: responses(201) } }, async (request, reply) => {
    const ctx = context(request, 'create');
    const created = await callScimmy(ctx, () => new ScimUser(undefined, projection(request.query)).write(normaliseScimUser(request.body) as object, ctx));
    const body = toBody(created, origin);
    const location = (body.meta as { location?: string } | undefined)?.location;
    if (location) reply.header('location', location);
    return send(reply, 201, body);
  });

  r.get(`${SCIM_BASE_PATH}/Users/:id`, { config: { permission: 'users.view' }, schema: { params: Id, querystring: Type.Object(Projection), response: responses(200) } }, async (request, reply) => {
    const ctx = context(request, 'read');
    return send(reply, 200, await callScimmy(ctx, () => userResource(request.params.id, request.query).read(ctx)));
  });

  r.put(`${SCIM_BASE_PATH}/Users/:id`, { config: { permission: 'users.edit' }, schema: { params: Id, body: ScimBody, querystring: Type.Object(Projection), response: responses(200) } }, async (request, reply) => {
    const ctx = context(request, 'replace');
    return send(reply, 200, await callScimmy(ctx, () => userResource(request.params.id, request.query).write(normaliseScimUser(request.body) as object, ctx)));
  });

  r.patch(`${SCIM_BASE_PATH}/Users/:id`, { config: { permission: 'users.edit' }, schema: { params: Id, body: ScimBody, querystring: Type.Object(Projection), response: responses(200) } }, async (request, reply) => {
    const ctx = context(request, 'patch');
    const patched = await callScimmy(ctx, async () => {
      const resource = userResource(request.params.id, request.query);
      // SCIMMY answers nothing when the operations changed nothing; clients are answered with the user either way.
      return (await resource.patch(normalisePatchOp(request.body) as never, ctx)) ?? (await userResource(request.params.id, request.query).read({ ...ctx, mode: 'read' }));
    });
    return send(reply, 200, patched);
  });

  r.delete(`${SCIM_BASE_PATH}/Users/:id`, { config: { permission: 'users.edit' }, schema: { params: Id, response: { 204: Type.Null(), '4xx': ScimResponse, '5xx': ScimResponse } } }, async (request, reply) => {
    const ctx = context(request, 'delete');
    await callScimmy(ctx, () => userResource(request.params.id).dispose(ctx));
    return reply.status(204).send(null);
  });

  // Discovery (RFC 7644 §4): what any token may read, as clients read it before they provision.
  r.get(`${SCIM_BASE_PATH}/ServiceProviderConfig`, { config: { permission: ANY_ROLE }, schema: { response: responses(200) } }, async (request, reply) => {
    const ctx = context(request, 'read');
    return send(reply, 200, await callScimmy(ctx, () => new SCIMMY.Resources.ServiceProviderConfig(undefined).read()));
  });
  r.get(`${SCIM_BASE_PATH}/ResourceTypes`, { config: { permission: ANY_ROLE }, schema: { response: responses(200) } }, async (request, reply) => {
    const ctx = context(request, 'read');
    return send(reply, 200, await callScimmy(ctx, () => new SCIMMY.Resources.ResourceType().read()));
  });
  r.get(`${SCIM_BASE_PATH}/ResourceTypes/:id`, { config: { permission: ANY_ROLE }, schema: { params: Id, response: responses(200) } }, async (request, reply) => {
    const ctx = context(request, 'read');
    return send(reply, 200, await callScimmy(ctx, () => new SCIMMY.Resources.ResourceType(request.params.id).read()));
  });
  r.get(`${SCIM_BASE_PATH}/Schemas`, { config: { permission: ANY_ROLE }, schema: { response: responses(200) } }, async (request, reply) => {
    const ctx = context(request, 'read');
    return send(reply, 200, await callScimmy(ctx, () => new SCIMMY.Resources.Schema().read()));
  });
  r.get(`${SCIM_BASE_PATH}/Schemas/:id`, { config: { permission: ANY_ROLE }, schema: { params: Id, response: responses(200) } }, async (request, reply) => {
    const ctx = context(request, 'read');
    return send(reply, 200, await callScimmy(ctx, () => new SCIMMY.Resources.Schema(request.params.id).read()));
  });

  // Anything else under /scim/v2 (Groups, Bulk, /Me) is answered in SCIM's shape, after the gate, rather than as a page.
  r.route({
    method: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
    url: `${SCIM_BASE_PATH}/*`,
    config: { permission: ANY_ROLE },
    schema: { response: { '4xx': ScimResponse } },
    handler: async () => {
      throw scimError(404, undefined, 'Latchkey’s SCIM service provisions Users only: /Users, with /ServiceProviderConfig, /ResourceTypes and /Schemas to describe it.');
    },
  });
}
