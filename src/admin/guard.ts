/**
 * The console's gate. Every route registered inside the console plugin (and the
 * plugins it registers) declares the permission it needs on the route itself,
 * `config: { permission }`, and one onRequest hook decides from the route that
 * matched — never from `request.url`, whose spelling (`/%61dmin`) the router
 * decodes but a string comparison does not. A route that declares nothing does
 * not register: start-up fails instead of serving it open.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { appError } from '../errors.js';
import { wantsHtml } from '../plugins/errorHandler.js';
import type { User } from '../db/schema.js';
import { can, isPermission, type Permission, type Role } from './roles.js';

/** Declared by pages every console role may open (the home page); still needs a signed-in agent with a role. */
export const ANY_ROLE = 'any_role';
export type ConsolePermission = Permission | typeof ANY_ROLE;

export interface Agent {
  user: User;
  roles: Role[];
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** On console routes: the permission the route needs (roles.ts), or ANY_ROLE. */
    permission?: ConsolePermission;
  }
  interface FastifyRequest {
    /** The signed-in agent and their roles, on console routes (set by the gate before anything else runs). */
    agent: Agent | null;
  }
}

export interface ConsoleRoute {
  method: string;
  url: string;
  permission: ConsolePermission;
}

/** Console routes per server (contexts are encapsulated; the server is shared by all of them). */
const registered = new WeakMap<object, ConsoleRoute[]>();

/** Every console route registered on this app, with the permission it declared (tests enumerate them). */
export function consoleRoutes(app: FastifyInstance): readonly ConsoleRoute[] {
  return registered.get(app.server) ?? [];
}

/** The agent on a console route; never undefined there, and a missing one is refused rather than answered with 500. */
export function agentOf(request: FastifyRequest): Agent {
  if (!request.agent) throw appError('not_signed_in');
  return request.agent;
}

export const refusedMessage = 'Your role does not allow this. Ask an RA Manager if you need it.';

/**
 * Put the gate on this plugin context: call it first in the console plugin, before any route.
 * `noRole` answers a signed-in person without any console role who asked for a page.
 */
export function guardConsole(app: FastifyInstance, noRole: (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>): void {
  const { store } = app.latchkey;
  let routes = registered.get(app.server);
  if (!routes) registered.set(app.server, (routes = []));
  const list = routes;

  app.decorateRequest('agent', null);

  app.addHook('onRoute', (route) => {
    const permission = route.config?.permission;
    const methods = ([] as string[]).concat(route.method);
    if (permission === undefined || (permission !== ANY_ROLE && !isPermission(permission))) {
      throw new Error(`Console route ${methods.join(',')} ${route.url} declares no permission: add config: { permission } (src/admin/roles.ts, or ANY_ROLE)`);
    }
    for (const method of methods) if (method !== 'HEAD') list.push({ method, url: route.url, permission });
  });

  // Who is asking, before anything else: signed in, holding a role, and a role that has the route's permission.
  app.addHook('onRequest', async (request, reply) => {
    const permission = request.routeOptions.config.permission;
    if (!request.auth) {
      if (request.method === 'GET' && wantsHtml(request)) return reply.redirect(`/signin?next=${encodeURIComponent(canonicalUrl(request.url))}`);
      throw appError('not_signed_in');
    }
    const roles = await store.roles.listForUser(request.auth.user.id);
    if (!roles.length) {
      if (request.method === 'GET' && wantsHtml(request)) return noRole(request, reply);
      throw appError('no_console_role');
    }
    request.agent = { user: request.auth.user, roles };
    // Fail closed: onRoute refuses routes without a permission, and this refuses anything that slipped past it.
    if (permission === undefined || (permission !== ANY_ROLE && !can(roles, permission))) throw appError('forbidden', refusedMessage);
  });
}

/** The URL as the router read it, so "next" after sign-in is the same whichever spelling was asked for. */
function canonicalUrl(url: string): string {
  try {
    return decodeURI(url);
  } catch {
    return url;
  }
}
