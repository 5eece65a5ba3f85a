/**
 * The admin API under /api/v1: JSON, bearer tokens (guard.ts), one plugin per resource registered inside the gate so
 * its onRoute rule covers every one of them. Routes call the same functions as the console (src/users, src/admin),
 * never a second implementation of a rule.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ANY_ROLE } from '../admin/guard.js';
import { apiTokenOf, guardApi } from './guard.js';
import { errorResponses } from './schemas.js';
import { apiUsersRoutes } from './routes/users.js';
import { apiEnrolmentsRoutes } from './routes/enrolments.js';
import { apiAuthenticatorsRoutes } from './routes/authenticators.js';
import { apiRolesRoutes } from './routes/roles.js';
import { apiAuditRoutes } from './routes/audit.js';
import { apiImportsRoutes } from './routes/imports.js';

const TokenInfo = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    role: Type.String({ description: 'The console role the token acts with' }),
    expiresAt: Type.String({ format: 'date-time' }),
  },
  { description: 'The token that made the request' },
);

export async function apiRoutes(app: FastifyInstance) {
  guardApi(app, { area: 'api' });
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  r.get(
    '/api/v1/token',
    {
      config: { permission: ANY_ROLE },
      schema: { operationId: 'getToken', summary: 'The token making this request', description: 'Any valid token may ask: a way to check a token works and what role it acts with.', tags: ['tokens'], response: { 200: TokenInfo, ...errorResponses() } },
    },
    async (request) => {
      const token = apiTokenOf(request);
      return { id: token.id, name: token.name, role: token.role, expiresAt: new Date(token.expires_at).toISOString() };
    },
  );

  for (const resource of [apiUsersRoutes, apiEnrolmentsRoutes, apiAuthenticatorsRoutes, apiRolesRoutes, apiAuditRoutes, apiImportsRoutes]) await app.register(resource);
}
