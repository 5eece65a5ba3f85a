/**
 * Setting a person's registration-authority roles, as the console and the admin API both do it: every name must be a
 * role (roles.ts), repeats count once, and the change and its audit record (`roles.changed`, only when something
 * changed) land in one transaction.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { audit } from '../audit.js';
import { appError } from '../errors.js';
import type { User } from '../db/schema.js';
import { isRole, type Role } from './roles.js';

/** Replace `user`'s roles with `requested`; `grantedBy` is the agent (null for an API token, which the audit record names). */
export async function setRoles(
  app: FastifyInstance,
  request: FastifyRequest,
  user: User,
  requested: readonly string[],
  grantedBy: string | null,
): Promise<{ roles: Role[]; added: Role[]; removed: Role[] }> {
  const { store, now } = app.latchkey;
  const unknown = requested.find((role) => !isRole(role));
  if (unknown !== undefined) throw appError('validation_failed', `"${unknown.slice(0, 64)}" is not a role.`, [{ field: 'roles', message: 'Choose roles from the list' }]);
  const roles = [...new Set(requested)] as Role[];
  const { added, removed } = await store.transaction(async (tx) => {
    const changed = await tx.roles.set(user.id, roles, grantedBy, now());
    if (changed.added.length || changed.removed.length) await audit(app, request, { event: 'roles.changed', subjectUserId: user.id, detail: changed }, tx);
    return changed;
  });
  return { roles: [...roles].sort(), added, removed };
}
