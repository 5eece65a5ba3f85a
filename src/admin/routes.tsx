/**
 * The registration-authority console under /admin. Every route declares the
 * permission it needs (roles.ts) in its config, and the gate (guard.ts) checks
 * it against the route that matched before anything is read or changed; agents
 * never act on their own account here; every change is audited in the
 * transaction that makes it. One plugin per resource (routes/), registered here
 * inside the gate so its onRoute rule covers every one of them.
 */
import type { FastifyInstance } from 'fastify';
import { auditRefusal, auditRefusals } from '../audit.js';
import { html } from '../http/replies.js';
import { renderPage } from '../views/render.js';
import { consoleServicesRoutes } from '../oidc/servicesRoutes.js';
import { guardConsole } from './guard.js';
import { NoRolePage } from './views.js';
import { consoleUsersRoutes } from './routes/users.js';
import { consoleRolesRoutes } from './routes/roles.js';
import { consoleAuthenticatorsRoutes } from './routes/authenticators.js';
import { consoleEnrolmentsRoutes } from './routes/enrolments.js';
import { consoleAuditRoutes } from './routes/audit.js';
import { consoleTemplatesRoutes } from './routes/templates.js';
import { consolePolicyRoutes } from './routes/policy.js';
import { consoleApiTokensRoutes } from './routes/apiTokens.js';
import { consoleWebhooksRoutes } from './routes/webhooks.js';
import { consoleImportsRoutes } from './routes/imports.js';

export async function adminRoutes(app: FastifyInstance) {
  const { config, store } = app.latchkey;

  // First, before any route: every route declares its permission, and the gate checks it (guard.ts).
  guardConsole(app, async (request, reply) => {
    // A page, not an error: so the refusal is recorded here rather than by auditRefusals below.
    await auditRefusal(app, request, { event: 'console.refused', outcome: 'refused', reason: 'no_console_role' });
    return html(reply, renderPage(<NoRolePage config={config} csrfToken={request.csrfToken} user={request.auth!.user} />), 403);
  });
  // Refusals and failures are audited too (rate-limited), with the person the request was about.
  auditRefusals(app, {
    area: 'console',
    subjectOf: async (request) => {
      const id = (request.params as { id?: unknown }).id;
      return typeof id === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(id) ? (await store.users.findById(id))?.id : null;
    },
  });

  for (const resource of [consoleUsersRoutes, consoleRolesRoutes, consoleAuthenticatorsRoutes, consoleEnrolmentsRoutes, consoleAuditRoutes, consoleTemplatesRoutes, consoleServicesRoutes, consolePolicyRoutes, consoleApiTokensRoutes, consoleWebhooksRoutes, consoleImportsRoutes]) await app.register(resource);
}
