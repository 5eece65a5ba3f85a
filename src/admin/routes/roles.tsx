/** Roles in the console: an RA Manager sets another person's roles (roles.ts). */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { audit } from '../../audit.js';
import { appError } from '../../errors.js';
import { Csrf } from '../../http/schemas.js';
import { agentOf } from '../guard.js';
import { isRole, type Role } from '../roles.js';
import { loadOtherUser, UserParams } from './shared.js';

const RolesBody = Type.Object({
  ...Csrf,
  roles: Type.Optional(Type.Union([Type.String({ maxLength: 64 }), Type.Array(Type.String({ maxLength: 64 }), { maxItems: 8 })])),
});

export async function consoleRolesRoutes(app: FastifyInstance) {
  const { store, now } = app.latchkey;
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  r.post('/admin/users/:id/roles', { config: { permission: 'roles.manage' }, schema: { params: UserParams, body: RolesBody } }, async (request, reply) => {
    const user = await loadOtherUser(request, request.params.id);
    const raw = request.body.roles === undefined ? [] : Array.isArray(request.body.roles) ? request.body.roles : [request.body.roles];
    const unknown = raw.find((role) => !isRole(role));
    if (unknown !== undefined) throw appError('validation_failed', `"${unknown.slice(0, 64)}" is not a role.`, [{ field: 'roles', message: 'Choose roles from the list' }]);
    const roles = [...new Set(raw)] as Role[];
    await store.transaction(async (tx) => {
      const { added, removed } = await tx.roles.set(user.id, roles, agentOf(request).user.id, now());
      if (added.length || removed.length) await audit(app, request, { event: 'roles.changed', subjectUserId: user.id, detail: { added, removed } }, tx);
    });
    return reply.redirect(`/admin/users/${user.id}?done=roles`, 303);
  });
}
