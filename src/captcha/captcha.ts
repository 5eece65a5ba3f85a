/**
 * CAPTCHA behind one small interface. The default is ALTCHA (altcha-lib): a
 * proof of work the browser solves by itself, served by Latchkey (no third
 * party sees our users, nothing to click or read). Each solution works once.
 */
import { createChallenge, verifySolution } from 'altcha-lib/v1';
import { hmac } from '../crypto.js';
import type { Store } from '../db/store.js';

export interface CaptchaChallenge {
  provider: string;
  [field: string]: unknown;
}

export interface Captcha {
  readonly name: string;
  /** A new challenge for the browser to solve. */
  challenge(now: number): Promise<CaptchaChallenge>;
  /** True when `solution` (the form's `captcha` field) solves a challenge of ours that was not used before. */
  verify(solution: string, now: number): Promise<boolean>;
}

export const CAPTCHA_SECONDS = 10 * 60;

export class AltchaCaptcha implements Captcha {
  readonly name = 'altcha';
  private readonly hmacKey: string;
  constructor(
    secret: string,
    private readonly store: Store,
    /** Work per challenge: the browser tries up to this many hashes (about a second on a phone at 100,000). */
    private readonly maxNumber = 100_000,
  ) {
    this.hmacKey = hmac(secret, 'altcha-hmac-key');
  }

  async challenge(now: number): Promise<CaptchaChallenge> {
    const c = await createChallenge({ hmacKey: this.hmacKey, maxNumber: this.maxNumber, expires: new Date(now + CAPTCHA_SECONDS * 1000) });
    return { provider: this.name, ...c };
  }

  async verify(solution: string, now: number): Promise<boolean> {
    if (!solution || solution.length > 2000) return false;
    let payload: { signature?: unknown; salt?: unknown };
    try {
      payload = JSON.parse(Buffer.from(solution, 'base64').toString('utf8')) as typeof payload;
    } catch {
      return false;
    }
    if (typeof payload.signature !== 'string' || typeof payload.salt !== 'string') return false;
    // altcha-lib checks expiry against the real clock; ours may be a test clock, so check the salt's expiry ourselves too.
    const expires = Number(new URLSearchParams(payload.salt.split('?')[1] ?? '').get('expires'));
    if (!expires || expires * 1000 <= now) return false;
    if (!(await verifySolution(solution, this.hmacKey, false).catch(() => false))) return false;
    // Single use: the first to count this signature wins.
    const uses = await this.store.rateCounters.hit(`captcha:${payload.signature}`, CAPTCHA_SECONDS * 1000 * 2, now);
    return uses === 1;
  }
}
