/**
 * Failed sign-ins per account, across methods (NIST SP 800-63B §5.2.2): after
 * 5 consecutive failures each attempt waits longer (1 s, 2 s, 4 s … up to 15
 * minutes after the previous failure), and at 100 the account locks until an
 * agent unlocks it. A success resets the count.
 */
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
