/**
 * Suspending and reactivating a person, as the console, the admin API and SCIM do it. Suspending signs them out
 * everywhere and revokes their unused enrolment links and codes; reactivating returns them to Enrolled (or Pending
 * with no authenticator). Each is one transaction with its audit record.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { audit } from '../audit.js';
import type { User } from '../db/schema.js';
import { ENROLMENT_FLOWS } from '../flows/enrolment/invites.js';

export async function suspendUser(app: FastifyInstance, request: FastifyRequest | null, user: User, via: string): Promise<void> {
  const { store, now } = app.latchkey;
  await store.transaction(async (tx) => {
    await tx.users.setStatus(user.id, 'suspended', now());
    await tx.sessions.deleteForUser(user.id);
    await tx.flows.revokeActiveForUser(user.id, ENROLMENT_FLOWS, now());
    await audit(app, request, { event: 'user.suspended', subjectUserId: user.id, detail: { via } }, tx);
  });
}

/** Reactivate a suspended person; for one who is not suspended it only records the request (as the console always has). */
export async function reactivateUser(app: FastifyInstance, request: FastifyRequest | null, user: User, via: string): Promise<void> {
  const { store, now } = app.latchkey;
  await store.transaction(async (tx) => {
    if (user.status === 'suspended') {
      const passkeys = await tx.authenticators.countForUser(user.id);
      await tx.users.setStatus(user.id, passkeys ? 'enrolled' : 'pending', now());
    }
    await audit(app, request, { event: 'user.reactivated', subjectUserId: user.id, detail: { via } }, tx);
  });
}
