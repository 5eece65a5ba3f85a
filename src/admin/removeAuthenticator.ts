/**
 * Removing a person's authenticator, as the console and the admin API both do it (seed 000): in one transaction the
 * authenticator goes, the sessions signed in with it end, its kind tidies up after it (KindRegistry.removed), a person
 * left without one returns to Pending (seed 003), and the removal is audited; then the person is told by email.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { audit } from '../audit.js';
import { appError } from '../errors.js';
import type { Authenticator, User } from '../db/schema.js';
import { formatTime } from '../views/layout.js';

export const AUTHENTICATOR_NOT_FOUND_MESSAGE = 'That authenticator was not found. It may already have been removed.';

/** Remove `authenticator` from `user`; `notified` is false when the notice email could not be sent (the removal stands). */
export async function removeAuthenticator(app: FastifyInstance, request: FastifyRequest, user: User, authenticator: Authenticator): Promise<{ notified: boolean; sessionsEnded: number }> {
  const { config, store, now, mailer, kinds } = app.latchkey;
  const sessionsEnded = await store.transaction(async (tx) => {
    if (!(await tx.authenticators.remove(user.id, authenticator.id))) return undefined;
    const ended = await tx.sessions.deleteForAuthenticator(user.id, authenticator.id);
    await kinds.removed(tx, user, authenticator, now());
    // Pending means no passkey (seed 003): a person left without one needs a new link or code.
    if (user.status === 'enrolled' && (await tx.authenticators.countForUser(user.id)) === 0) await tx.users.setStatus(user.id, 'pending', now());
    await audit(
      app,
      request,
      { event: 'authenticator.removed', subjectUserId: user.id, authenticatorId: authenticator.id, detail: { name: authenticator.name, type: authenticator.type, sessionsEnded: ended } },
      tx,
    );
    return ended;
  });
  if (sessionsEnded === undefined) throw appError('not_found', AUTHENTICATOR_NOT_FOUND_MESSAGE);
  try {
    await mailer.send({
      to: user.email,
      subject: `A passkey was removed from your ${config.organisation} account`,
      text: `Hello ${user.display_name},

A registration authority agent removed the passkey "${authenticator.name}" from your ${config.organisation} account at ${formatTime(now())}. You have been signed out wherever you signed in with it.

If you did not ask for this, contact your registration authority or IT service desk.
`,
    });
    return { notified: true, sessionsEnded };
  } catch (err) {
    request.log.warn({ code: (err as { code?: string }).code }, 'removal notice not sent');
    return { notified: false, sessionsEnded };
  }
}
