/**
 * Failed sign-ins per account, across methods (NIST SP 800-63B §5.2.2): after
 * 5 consecutive failures each attempt waits longer (1 s, 2 s, 4 s … up to 15
 * minutes after the previous failure), and at 100 the account locks until an
 * agent unlocks it. A success resets the count.
 *
 * An address without an account is counted the same way (under an HMAC of the
 * address), so the answers to wrong passwords never tell whether it has one.
 */
import { hmac } from '../crypto.js';
import { normalizeEmail } from '../db/persisters/users.js';
import type { User } from '../db/schema.js';
import type { Store } from '../db/store.js';
import { appError } from '../errors.js';

export const MAX_FAILED_SIGNINS = 100;
const FREE_FAILURES = 5;
const MAX_DELAY_MS = 15 * 60_000;

/** How long after the last failure the next attempt may come. */
export function signinDelayMs(failures: number): number {
  if (failures < FREE_FAILURES) return 0;
  return Math.min(1000 * 2 ** (failures - FREE_FAILURES), MAX_DELAY_MS);
}

/** Refuse an attempt the throttle does not allow yet (before any password or code is checked). */
export function checkSigninAllowed(user: Pick<User, 'failed_signins' | 'last_failed_signin_at'>, now: number): void {
  if (user.failed_signins >= MAX_FAILED_SIGNINS) throw appError('account_locked');
  const wait = (user.last_failed_signin_at ?? 0) + signinDelayMs(user.failed_signins) - now;
  if (wait > 0) {
    const seconds = Math.ceil(wait / 1000);
    throw appError('signin_throttled', `Too many failed attempts to sign in to this account. Wait ${seconds} second${seconds === 1 ? '' : 's'} and try again.`);
  }
}

export async function recordSigninFailure(store: Store, userId: string, now: number): Promise<number> {
  return store.users.recordFailedSignin(userId, now);
}

export async function recordSigninSuccess(store: Store, userId: string): Promise<void> {
  await store.users.resetFailedSignins(userId);
}

/**
 * How long an address without an account keeps its failures after the last one. An account's run lasts until a
 * success or an agent's unlock; an address's must end (a row per address tried), and its end looks like what ends an
 * account's run (the person signing in, with a passkey say, or an agent unlocking it). Telling the two apart takes a
 * month's wait per try, and the table holds only the addresses tried in the last month.
 */
export const UNKNOWN_ADDRESS_FAILURES_KEPT_MS = 30 * 24 * 3600_000;

/** What an address's failures are counted under while it has no account: never the address itself. */
export function signinFailureKey(secret: string, email: string): string {
  return hmac(secret, `signin-failures:${normalizeEmail(email)}`);
}

export interface SigninThrottle {
  /** The run so far, for {@link checkSigninAllowed}. */
  failures: Pick<User, 'failed_signins' | 'last_failed_signin_at'>;
  recordFailure(now: number): Promise<void>;
}

/**
 * The throttle a password sign-in at `email` answers to: the account's count, or for an address with no account the
 * count kept under its key, so an unknown address waits and locks (429, then 403, same messages) exactly as an
 * account does. Both paths look the key up and both write a failure, so both do the same queries. An account never
 * reads the key's count: failures at an address before it had an account don't lock its person out.
 */
export async function loadSigninThrottle(store: Store, secret: string, email: string, user: User | undefined, now: number): Promise<SigninThrottle> {
  const key = signinFailureKey(secret, email);
  const unknownAddress = await store.signinFailures.find(key, now - UNKNOWN_ADDRESS_FAILURES_KEPT_MS);
  if (user) {
    return {
      failures: user,
      recordFailure: async (at) => {
        await recordSigninFailure(store, user.id, at);
      },
    };
  }
  return {
    failures: unknownAddress ?? { failed_signins: 0, last_failed_signin_at: null },
    recordFailure: async (at) => {
      await store.signinFailures.recordFailure(key, at, at - UNKNOWN_ADDRESS_FAILURES_KEPT_MS);
    },
  };
}

/** Forget the runs of addresses without an account whose last failure is older than they are kept (maintenance). */
export function pruneSigninFailures(store: Store, now: number): Promise<number> {
  return store.signinFailures.deleteBefore(now - UNKNOWN_ADDRESS_FAILURES_KEPT_MS);
}
