/**
 * Whether someone who just signed in with anything but a passkey (a password with an app, a password alone, a
 * linked work account) is offered one now. Every such sign-in asks here after starting the session; passkey
 * sign-ins never do. The "Set up a passkey" page and its ceremony ask the same question (isPasskeyOffered).
 */
import type { FastifyInstance } from 'fastify';
import type { Config } from '../../config/index.js';
import type { Authenticator, User } from '../../db/schema.js';
import { PASSKEY_TYPE } from '../../strategies/passkey/kind.js';
import { reachesBindingLevel } from '../../plugins/sessions.js';

export const PASSKEY_UPGRADE_PATH = '/passkey-upgrade';

/**
 * Ask when the option is on (LATCHKEY_PASSKEY_PROMPT_DAYS > 0), the person has no passkey, and they have not chosen
 * "Not now" within that many days.
 */
export function shouldOfferPasskey(
  config: Pick<Config, 'passkeyPromptSeconds'>,
  user: Pick<User, 'passkey_prompt_skipped_at'>,
  authenticators: Pick<Authenticator, 'type'>[],
  now: number,
): boolean {
  if (config.passkeyPromptSeconds <= 0) return false;
  if (authenticators.some((a) => a.type === PASSKEY_TYPE)) return false;
  const skipped = user.passkey_prompt_skipped_at;
  return skipped === null || now - skipped >= config.passkeyPromptSeconds * 1000;
}

/**
 * shouldOfferPasskey for this person as they are stored now, signed in at `aal`; and only when that sign-in may add a
 * passkey without another check (reachesBindingLevel: a password alone from someone who also has an app can't), so the
 * page is never a detour that sends them on with nothing to offer.
 */
export async function isPasskeyOffered(app: FastifyInstance, user: User, aal: number): Promise<boolean> {
  const { config, store, now, kinds } = app.latchkey;
  const authenticators = await store.authenticators.listForUser(user.id);
  return shouldOfferPasskey(config, user, authenticators, now()) && reachesBindingLevel(kinds, user, authenticators, aal);
}

/** The "Set up a passkey" page for a person on their way to `next` (a local path; /settings when there is none). */
export function passkeyUpgradeUrl(next: string | undefined): string {
  return `${PASSKEY_UPGRADE_PATH}?next=${encodeURIComponent(next ?? '/settings')}`;
}

/**
 * Where a sign-in without a passkey goes instead of `next`: the "Set up a passkey" page when this person should be
 * asked, undefined to carry on as before. The page sends them on to `next` (a waiting service at once on "Not now").
 */
export async function afterNonPasskeySignIn(app: FastifyInstance, user: User, aal: number, next: string | undefined): Promise<string | undefined> {
  return (await isPasskeyOffered(app, user, aal)) ? passkeyUpgradeUrl(next) : undefined;
}
