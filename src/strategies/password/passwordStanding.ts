/**
 * Where a person stands with their one password (users.password_hash): the one place that reads it from their
 * authenticators, for settings' "Set a password" offer, the "Set a password" and "Change your password" pages, and
 * "Confirm it is you". What signs in is the kinds' call (KindRegistry), never a comparison of types in a flow.
 */
import type { Config } from '../../config/index.js';
import type { Authenticator, User } from '../../db/schema.js';
import type { KindRegistry } from '../kindRegistry.js';
import { TOTP_TYPE } from '../totp/kind.js';
import { PASSWORD_TYPE } from './kind.js';

export interface PasswordStanding {
  /** They set a password to sign in with on its own (a password row), whether or not the setting lets it now. */
  setAlone: boolean;
  /** It signs them in on its own now (the password kind: LATCHKEY_PASSWORD_SIGNIN=alone). */
  signsInAlone: boolean;
  /** It signs them in with a code from an authenticator app. */
  withApp: boolean;
  /**
   * With LATCHKEY_PASSWORD_SIGNIN=alone, settings offers "Set a password" to someone who hasn't set one: `app` when they
   * use their password with an app already (the words say setting it changes that one), `new` otherwise.
   */
  offer?: 'new' | 'app';
  /**
   * How "Confirm it is you" takes the password, by the step-up rule (KindRegistry.stepUpCandidates): with an app's code
   * for someone with an app; on its own only for someone who can step up with nothing stronger.
   */
  reauth?: 'with-app' | 'alone';
}

export function passwordStanding(kinds: KindRegistry, config: Pick<Config, 'passwordSignIn'>, user: Pick<User, 'password_hash'>, authenticators: Authenticator[]): PasswordStanding {
  const waysIn = kinds.waysIn(user, authenticators);
  const setAlone = authenticators.some((a) => a.type === PASSWORD_TYPE);
  const withApp = waysIn.some((a) => a.type === TOTP_TYPE);
  const stepUp = kinds.stepUpCandidates(user, authenticators);
  return {
    setAlone,
    signsInAlone: waysIn.some((a) => a.type === PASSWORD_TYPE),
    withApp,
    offer: config.passwordSignIn === 'alone' && !setAlone ? (withApp ? 'app' : 'new') : undefined,
    reauth: stepUp.some((a) => a.type === TOTP_TYPE) ? 'with-app' : stepUp.some((a) => a.type === PASSWORD_TYPE) ? 'alone' : undefined,
  };
}
