/** Roles in the admin API: what each role may do (roles.ts, the one table), and a person's roles (setRoles, as the console). */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { can, PERMISSIONS, roleDescriptions, roleLabels, ROLES } from '../../admin/roles.js';
import { setRoles } from '../../admin/setRoles.js';
import { errorResponses, fieldLabels, loadOtherUser, loadUser, UserPath } from '../schemas.js';

const RoleJson = Type.Object(
  {
    role: Type.String({ description: 'As the console and CLI name it (ra_manager, ra_agent_advanced, ra_agent, auditor)' }),
    label: Type.String(),
    description: Type.String(),
    permissions: Type.Array(Type.String(), { description: 'What the role allows; each API operation needs one (or only a valid token)' }),
  },
  { description: 'A registration-authority role' },
);
const UserRoles = Type.Object({ roles: Type.Array(Type.String()) }, { description: 'A user’s roles' });
const RolesBody = Type.Object({
  roles: Type.Array(Type.String({ maxLength: 64 }), { maxItems: 8, description: 'The complete set: roles not named are removed' }),
});
const tags = ['roles'];

export async function apiRolesRoutes(app: FastifyInstance) {
  const { store } = app.latchkey;
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const labels = fieldLabels({ roles: 'roles' });

  r.get(
    '/api/v1/roles',
    {
      config: { permission: 'users.view', fieldLabels: labels },
      schema: { operationId: 'listRoles', summary: 'The roles and what each allows', tags, response: { 200: Type.Object({ items: Type.Array(RoleJson) }), ...errorResponses() } },
    },
    async () => ({
      items: ROLES.map((role) => ({ role, label: roleLabels[role], description: roleDescriptions[role], permissions: PERMISSIONS.filter((p) => can([role], p)) })),
    }),
  );

  r.get(
    '/api/v1/users/:id/roles',
    {
      config: { permission: 'users.view', fieldLabels: labels },
      schema: { operationId: 'getUserRoles', summary: 'A user’s roles', tags, params: UserPath, response: { 200: UserRoles, ...errorResponses('user_not_found') } },
    },
    async (request) => ({ roles: await store.roles.listForUser((await loadUser(request, request.params.id)).id) }),
  );

  r.put(
    '/api/v1/users/:id/roles',
    {
      config: { permission: 'roles.manage', fieldLabels: labels },
      schema: {
        operationId: 'setUserRoles',
        summary: 'Set a user’s roles',
        description: 'Replaces the user’s roles with those named (an empty list removes them all), as an RA Manager does in the console.',
        tags,
        params: UserPath,
        body: RolesBody,
        response: { 200: UserRoles, ...errorResponses('user_not_found', 'own_account') },
      },
    },
    async (request) => {
      const user = await loadOtherUser(request, request.params.id);
      // The token, not a person, granted them: the audit record names it.
      const { roles } = await setRoles(app, request, user, request.body.roles, null);
      return { roles };
    },
  );
}
