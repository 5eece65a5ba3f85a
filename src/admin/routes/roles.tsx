/** Roles in the console: an RA Manager sets another person's roles (roles.ts). */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { Csrf } from '../../http/schemas.js';
import { agentOf } from '../guard.js';
import { setRoles } from '../setRoles.js';
import { loadOtherUser, UserParams } from './shared.js';

const RolesBody = Type.Object({
  ...Csrf,
  roles: Type.Optional(Type.Union([Type.String({ maxLength: 64 }), Type.Array(Type.String({ maxLength: 64 }), { maxItems: 8 })])),
});

export async function consoleRolesRoutes(app: FastifyInstance) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  r.post('/admin/users/:id/roles', { config: { permission: 'roles.manage' }, schema: { params: UserParams, body: RolesBody } }, async (request, reply) => {
    const user = await loadOtherUser(request, request.params.id);
    const raw = request.body.roles === undefined ? [] : Array.isArray(request.body.roles) ? request.body.roles : [request.body.roles];
    await setRoles(app, request, user, raw, agentOf(request).user.id);
    return reply.redirect(`/admin/users/${user.id}?done=roles`, 303);
  });
}
