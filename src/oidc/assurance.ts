/**
 * Authentication assurance: the one place that works out what a sign-in is
 * worth (NIST SP 800-63B rev 4) from what was used, and how an ID token says
 * so — `acr` (a configurable URI per level) and `amr` (RFC 8176 values).
 *
 * | used                                           | AAL | phishing-resistant | amr                       |
 * | ---------------------------------------------- | --- | ------------------ | ------------------------- |
 * | passkey with user verification, synced         | 2   | yes                | swk, user, mfa            |
 * | passkey with user verification, device-bound   | 2   | yes                | hwk, user, mfa            |
 * | device-bound passkey, verified attestation, UV | 3   | yes                | hwk, user, mfa            |
 * | password + authenticator app                   | 2   | no                 | pwd, otp, mfa             |
 * | linked work account                            | the provider's LATCHKEY_UPSTREAM_<ID>_AAL | no | fed |
 * | password alone                                 | 1   | no                 | pwd                       |
 *
 * Nothing reaches AAL3 yet: Latchkey asks for no attestation, so `attested` is
 * never true in the product. It is expressible so a later attestation policy
 * (FIDO metadata, trusted roots) only has to set it.
 */
import type { Config } from '../config/index.js';
import type { Authenticator } from '../db/schema.js';

export type Aal = 1 | 2 | 3;

/** What a sign-in used. */
export type SignInMethod =
  | { kind: 'passkey'; userVerified: boolean; deviceBound: boolean; attested?: boolean }
  | { kind: 'password+otp' }
  | { kind: 'linked-account'; upstreamAal: Aal }
  | { kind: 'password' };

export interface Assurance {
  aal: Aal;
  phishingResistant: boolean;
  /** RFC 8176 Authentication Method Reference values. */
  amr: string[];
}

export function assessSignIn(method: SignInMethod): Assurance {
  switch (method.kind) {
    case 'passkey': {
      const key = method.deviceBound ? 'hwk' : 'swk';
      // Without user verification a passkey is one factor (something you have): AAL1.
      if (!method.userVerified) return { aal: 1, phishingResistant: true, amr: [key] };
      // SP 800-63B rev 4 §2.3.2: AAL3 needs a non-exportable (device-bound) key whose provenance is known.
      const aal: Aal = method.deviceBound && method.attested ? 3 : 2;
      return { aal, phishingResistant: true, amr: [key, 'user', 'mfa'] };
    }
    case 'password+otp':
      return { aal: 2, phishingResistant: false, amr: ['pwd', 'otp', 'mfa'] };
    case 'linked-account':
      return { aal: method.upstreamAal, phishingResistant: false, amr: ['fed'] };
    case 'password':
      return { aal: 1, phishingResistant: false, amr: ['pwd'] };
  }
}

/**
 * The sign-in method behind a stored authenticator. Passkey sign-in always
 * requires user verification (webauthn/verifyAssertion.ts refuses assertions
 * without it), so a passkey that signed someone in was user-verified.
 */
export function methodOf(authenticator: Pick<Authenticator, 'type' | 'backup_eligible'>, upstreamAal: Aal = 2): SignInMethod {
  switch (authenticator.type) {
    case 'passkey':
      // Backup-eligible credentials can be synced to other devices (WebAuthn L3 §6.1.3): not device-bound.
      return { kind: 'passkey', userVerified: true, deviceBound: authenticator.backup_eligible === 0, attested: false };
    case 'totp':
      return { kind: 'password+otp' };
    case 'linked-account':
      return { kind: 'linked-account', upstreamAal };
    default:
      return { kind: 'password' };
  }
}

/** The acr value for a level (configurable: LATCHKEY_OIDC_ACR_AAL1…3). */
export function acrFor(config: Pick<Config, 'oidcAcr'>, aal: Aal): string {
  return config.oidcAcr[aal];
}

/** The level an acr value stands for; undefined for values Latchkey does not issue. */
export function aalOfAcr(config: Pick<Config, 'oidcAcr'>, acr: string | undefined): Aal | undefined {
  if (acr === undefined) return undefined;
  for (const level of [3, 2, 1] as const) if (config.oidcAcr[level] === acr) return level;
  return undefined;
}

export function toAal(n: number): Aal {
  return n >= 3 ? 3 : n >= 2 ? 2 : 1;
}
