/**
 * What the console's resource plugins share: the page context, loading the person a
 * route is about (404 when unknown), the "done" banners, and the schemas of their paths.
 */
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { appError } from '../../errors.js';
import type { User } from '../../db/schema.js';
import { Id } from '../../http/schemas.js';
import { agentOf } from '../guard.js';
import type { AdminContext } from '../views.js';

export const UserParams = Type.Object({ id: Id });

/**
 * An audit record's id from an "Older events" link: at most 15 digits, so it stays below Number.MAX_SAFE_INTEGER
 * and PostgreSQL's bigint (a 20-digit one reached the query there and answered 500).
 */
export const RecordId = Type.String({ minLength: 1, maxLength: 15, pattern: '^[0-9]+$' });
/** `done` names the banner after a change (flashes below); `before` pages the Activity tab. */
export const Flash = Type.Object({ done: Type.Optional(Type.String({ maxLength: 32 })), before: Type.Optional(RecordId) });

/** Events per page of the audit log and of a person's Activity tab. */
export const AUDIT_PAGE_SIZE = 50;

/** What every console page needs: the configuration, the CSRF token and the signed-in agent. */
export function adminContext(request: FastifyRequest): AdminContext {
  const { config, kinds } = request.server.latchkey;
  return { config, kinds, csrfToken: request.csrfToken, agent: agentOf(request) };
}

/** The person a route is about, or 404. */
export async function loadUser(request: FastifyRequest, id: string): Promise<User> {
  const user = await request.server.latchkey.store.users.findById(id);
  if (!user) throw appError('user_not_found');
  return user;
}

/** The person being changed, who must not be the agent changing them. */
export async function loadOtherUser(request: FastifyRequest, id: string): Promise<User> {
  const user = await loadUser(request, id);
  if (user.id === agentOf(request).user.id) throw appError('own_account');
  return user;
}

const flashes: Record<string, (user?: User) => string> = {
  added: (u) => `${u?.display_name} has been added. They are Pending until they set up a passkey.`,
  removed: (u) => `The passkey has been removed from ${u?.display_name}’s profile.`,
  'removed-unnotified': (u) => `The passkey has been removed from ${u?.display_name}’s profile. The email telling them could not be sent.`,
  revoked: () => 'The link or code has been revoked. It can no longer be used.',
  'not-revoked': () => 'That link or code was already used, revoked or expired.',
  'national-id': () => 'The identifier has been saved.',
  roles: () => 'Roles saved.',
  suspended: (u) => `${u?.display_name} has been suspended and signed out everywhere.`,
  reactivated: (u) => `${u?.display_name} can sign in again.`,
  unlocked: (u) => `${u?.display_name}'s failed sign-ins have been cleared: they can sign in again.`,
  'template-saved': () => 'Template saved.',
  'template-deleted': () => 'Template deleted.',
  'policy-saved': () => 'Authenticator policy saved. New passkeys are checked against it from now on, and every passkey’s level (AAL) follows it at its next sign-in.',
  'policy-unchanged': () => 'Nothing was changed: the policy is as it was.',
};

/** The banner for `?done=…` after a change, or null for none (or an unknown one). */
export function flashFor(done: string | undefined, user?: User): string | null {
  return done && flashes[done] ? flashes[done](user) : null;
}
