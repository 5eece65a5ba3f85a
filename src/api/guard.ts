/**
 * The gate of the admin API and SCIM: a bearer token (apiTokens.ts), never a cookie. Like the console's gate
 * (src/admin/guard.ts), every route declares the permission it needs, `config: { permission }`, and one onRequest
 * hook decides from the route that matched; a route that declares none does not register. A token acts with its
 * one role: what the role may not do in the console, the token may not do here (403). Refusals are audited, and
 * so is every use: changes name the token as their actor, reads are recorded as `api.read`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { audit, auditRefusals } from '../audit.js';
import { appError } from '../errors.js';
import type { ApiToken } from '../db/schema.js';
import { can, isPermission, roleLabels } from '../admin/roles.js';
import { ANY_ROLE } from '../admin/guard.js';
import { findUsableApiToken, makerStillHolds } from './apiTokens.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The token that made this request, on API and SCIM routes (set by the gate before anything else runs). */
    apiToken: ApiToken | null;
  }
}

/** last_used_at is written at most this often per token, so a busy integration does not write on every request. */
const TOUCH_INTERVAL_MS = 60_000;
const BEARER = /^Bearer[ ]+([!-~]{1,200})$/i;

export interface ApiRoute {
  method: string;
  url: string;
  permission: string;
}

/** Per server and area: the admin API's routes and SCIM's are listed apart (only the API's are in the OpenAPI document). */
const registered = new WeakMap<object, Map<'api' | 'scim', ApiRoute[]>>();

/** Every route behind the gate in `area` on this app, with its permission (tests match the API's against the OpenAPI document). */
export function apiRoutes(app: FastifyInstance, area: 'api' | 'scim' = 'api'): readonly ApiRoute[] {
  return registered.get(app.server)?.get(area) ?? [];
}

/** The token on an API route; never null there (the gate refuses first). */
export function apiTokenOf(request: FastifyRequest): ApiToken {
  if (!request.apiToken) throw appError('api_token_required');
  return request.apiToken;
}

/**
 * Put the gate on this plugin context (call it first, before any route). `area` names the audit records of
 * refusals (`api.refused`, `scim.refused`); `challenge` is the WWW-Authenticate realm.
 */
export function guardApi(app: FastifyInstance, options: { area: 'api' | 'scim' }): void {
  const { store, now } = app.latchkey;
  let areas = registered.get(app.server);
  if (!areas) registered.set(app.server, (areas = new Map()));
  let routes = areas.get(options.area);
  if (!routes) areas.set(options.area, (routes = []));
  const list = routes;

  if (!app.hasRequestDecorator('apiToken')) app.decorateRequest('apiToken', null);

  app.addHook('onRoute', (route) => {
    const permission = route.config?.permission;
    const methods = ([] as string[]).concat(route.method);
    if (permission === undefined || (permission !== ANY_ROLE && !isPermission(permission))) {
      throw new Error(`API route ${methods.join(',')} ${route.url} declares no permission: add config: { permission } (src/admin/roles.ts, or ANY_ROLE)`);
    }
    for (const method of methods) if (method !== 'HEAD') list.push({ method, url: route.url, permission });
    route.config = { ...route.config, jsonOnly: true };
  });

  app.addHook('onRequest', async (request, reply) => {
    // Only the bearer token speaks here: a browser's session cookie neither grants nor names anyone.
    request.auth = null;
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? BEARER.exec(header) : null;
    if (!match) {
      reply.header('www-authenticate', 'Bearer realm="latchkey"');
      throw appError('api_token_required');
    }
    const t = now();
    const found = await findUsableApiToken(store, match[1]!, t);
    // A suspended maker's tokens stop with them, as their console session does; so do those of one no longer a manager.
    const token = found && (await makerStillHolds(store, found)) ? found : undefined;
    if (!token) {
      reply.header('www-authenticate', 'Bearer realm="latchkey", error="invalid_token"');
      throw appError('api_token_invalid');
    }
    request.apiToken = token;
    if (token.last_used_at === null || t - token.last_used_at > TOUCH_INTERVAL_MS) await store.apiTokens.touch(token.id, t);
    const permission = request.routeOptions.config.permission;
    if (permission === undefined || (permission !== ANY_ROLE && !can([token.role], permission))) {
      throw appError('forbidden', `This token acts as ${roleLabels[token.role]}, which does not allow this. Ask an RA Manager for a token with a role that does.`);
    }
  });

  // Reads change nothing, so nothing else records them: one record per read, naming the token and the route.
  app.addHook('onResponse', async (request, reply) => {
    if (request.method !== 'GET' || !request.apiToken || reply.statusCode >= 400) return;
    try {
      await audit(app, request, { event: `${options.area}.read`, detail: { action: `GET ${request.routeOptions.url ?? ''}`, status: reply.statusCode } });
    } catch (error) {
      request.log.warn({ err: error }, 'API read not audited');
    }
  });

  auditRefusals(app, { area: options.area });
}
