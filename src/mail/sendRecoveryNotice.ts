/**
 * The email sent when an authenticator is added by recovery: through self-service's identity check, without any of
 * the person's existing authenticators (signed out). Whoever knows the person's email inbox and national identifier
 * can do that, so it goes to every address on the profile, says when and how, that nobody was signed out, and what to
 * do if it wasn't them. Sent after the authenticator is stored, best effort, one message per address (so no address
 * sees the others); a failure is logged and does not undo the authenticator.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config/index.js';
import type { User } from '../db/schema.js';
import { nationalIdFormat } from '../users/nationalId.js';
import { formatTime } from '../views/layout.js';
import type { Mailer } from './mailer.js';

/**
 * Every address on a profile that can be told. Today that is the profile's email alone: a linked work account keeps
 * only its provider and its issuer and subject (src/strategies/linkedAccount), never the address the provider gave.
 */
export function addressesOnProfile(user: Pick<User, 'email'>): string[] {
  return [user.email];
}

/** Send the notice to each address; returns the addresses it reached (a warning in the log for each it did not). */
export async function sendRecoveryNotice(
  deps: { mailer: Mailer; config: Pick<Config, 'organisation' | 'origin' | 'raContactUrl' | 'nationalIdLabel' | 'nationalIdPattern' | 'nationalIdHint'>; log: FastifyBaseLogger },
  user: Pick<User, 'email' | 'display_name'>,
  added: { what: string },
  at: number,
): Promise<string[]> {
  const { organisation, origin, raContactUrl } = deps.config;
  const label = nationalIdFormat(deps.config).label;
  const text = `Hello ${user.display_name},

A ${added.what} was added to your ${organisation} profile at ${formatTime(at)}, through the identity check: someone entered your email address and ${label}, and the code we emailed to ${user.email}. None of your existing passkeys or other ways to sign in was used.

We are sending this to every email address on your profile. Nobody has been signed out: your sessions carry on as before.

If this was you, you do not need to do anything.

If this was not you:
1. Sign in with your own passkey or another way you have (if you cannot, go to step 3): ${origin}/signin
2. In Login and security settings (${origin}/settings), remove the ${added.what} you do not recognise, and under "Where you are signed in" sign out every session you do not recognise.
3. Contact your registration authority straight away${raContactUrl ? ` (${raContactUrl})` : ''}: someone may know your ${label} and be able to read your email.
`;
  const reached: string[] = [];
  for (const to of addressesOnProfile(user)) {
    try {
      await deps.mailer.send({ to, subject: `An authenticator was added to your ${organisation} profile`, text });
      reached.push(to);
    } catch (err) {
      deps.log.warn({ code: (err as { code?: string }).code }, 'recovery notice not sent');
    }
  }
  return reached;
}
