/**
 * The authenticator policy and a passkey's standing under it, in words: for
 * `latchkey doctor`, the console's policy page and Authenticators tab, and the
 * person's settings. One place, so the three say the same thing.
 */
import type { AuthenticatorStatus } from '@simplewebauthn/server';
import type { Authenticator, User } from '../db/schema.js';
import type { Aal } from '../strategies/authenticatorKind.js';
import type { KindRegistry } from '../strategies/kindRegistry.js';
import { roleLabels } from '../admin/roles.js';
import { providerFor } from './aaguids.js';
import type { AttestationFacts, AuthenticatorPolicy } from './authenticatorPolicy.js';
import { certificationLabel, type CertificationLevel, type MetadataCatalogue } from './metadata/catalogue.js';
import type { Trust } from './trust.js';

/** What each compromising status (FIDO Metadata Service v3 §3.1.4) means, for people who don't read the spec. */
const compromisedStatusWords: Partial<Record<AuthenticatorStatus, string>> = {
  REVOKED: 'its certification was revoked',
  USER_VERIFICATION_BYPASS: 'its PIN or fingerprint check can be bypassed',
  ATTESTATION_KEY_COMPROMISE: 'the key that vouches for its make and model was stolen',
  USER_KEY_REMOTE_COMPROMISE: 'its keys can be copied remotely',
  USER_KEY_PHYSICAL_COMPROMISE: 'its keys can be copied by someone who holds it',
};

export function compromisedWords(status: AuthenticatorStatus): string {
  return compromisedStatusWords[status] ?? status;
}

/** What the policy does with a model marked compromised, in words. */
export const compromisedConsequence: Record<AuthenticatorPolicy['compromised'], string> = {
  'no-aal3': 'It stops counting for AAL3',
  refuse: 'It can no longer be used to sign in',
};

function models(aaguids: string[], catalogue: MetadataCatalogue): string {
  if (!aaguids.length) return '';
  return aaguids.map((a) => `${a} (${catalogue.get(a)?.description ?? providerFor(a).name})`).join(', ');
}

/** The policy, one line per setting in plain words, in the order of the console's form. */
export function policyInWords(policy: AuthenticatorPolicy, catalogue: MetadataCatalogue): [string, string][] {
  return [
    ['allowed models', policy.allowedModels.length ? `only ${models(policy.allowedModels, catalogue)}` : 'any model'],
    ['denied models', policy.deniedModels.length ? models(policy.deniedModels, catalogue) : 'none'],
    ['new passkeys', policy.minimumCertification ? `must be ${certificationLabel(policy.minimumCertification)} or higher` : 'no minimum certification'],
    ['synced passkeys', policy.syncedPasskeys === 'allowed' ? 'allowed' : 'not allowed: every new passkey must stay on one device'],
    [
      'device-bound keys for',
      policy.deviceBoundRoles.length ? `${policy.deviceBoundRoles.map((r) => roleLabels[r]).join(', ')} must register passkeys that stay on one device` : 'no role in particular',
    ],
    [
      'AAL3 needs',
      `a device-bound, attested key of a model in the FIDO metadata${policy.aal3MinimumCertification ? `, ${certificationLabel(policy.aal3MinimumCertification)} or higher` : ''}`,
    ],
    ['compromised models', `${compromisedConsequence[policy.compromised]} once the FIDO metadata reports a security problem`],
  ];
}

/** What is known of one passkey, for the console's Authenticators tab and the person's settings. */
export interface PasskeyStanding {
  /** The model from its verified attestation, else the metadata's or the provider's name; undefined when unknown. */
  model: string | undefined;
  /** Its attestation verified to a root the metadata gives for its AAGUID. */
  attested: boolean;
  /** The model's certification, when its attestation verified. */
  certification: CertificationLevel | undefined;
  deviceBound: boolean;
  /** Where it lives, when it stays there: a security key, or a device (phone, computer). */
  securityKey: boolean;
  /** The level a sign-in with it gives today; undefined when it can't sign in on its own. */
  aal: Aal | undefined;
  /** The model is marked compromised in the metadata: the status and what the policy does about it. */
  compromised?: { status: AuthenticatorStatus; words: string; consequence: AuthenticatorPolicy['compromised'] };
}

/** The standing of a passkey now: its stored attestation, the metadata and the policy in force. */
export function passkeyStanding(authenticator: Authenticator, user: Pick<User, 'password_hash'>, kinds: KindRegistry, trust: Trust): PasskeyStanding {
  const attestation = kinds.configOf<{ attestation?: AttestationFacts }>(authenticator)?.attestation;
  const entry = trust.metadata().get(authenticator.aaguid);
  const provider = providerFor(authenticator.aaguid);
  const attested = attestation?.verified === true;
  const status = entry?.compromised;
  return {
    model: attestation?.model ?? (attested ? entry?.description : undefined) ?? (provider.kind === 'unknown' ? undefined : provider.name),
    attested,
    // Certification is a claim about the model; only a verified attestation says this key is that model.
    certification: attested ? (attestation?.certification ?? entry?.certification) : undefined,
    deviceBound: authenticator.backup_eligible === 0,
    securityKey: provider.kind === 'security-key' || (attested && entry?.statement.attachmentHint?.includes('external') === true),
    aal: kinds.assuranceOf(authenticator, user)?.aal,
    compromised: status ? { status, words: compromisedWords(status), consequence: trust.policy().compromised } : undefined,
  };
}

/**
 * A passkey in plain words for its owner: "YubiKey 5 Series · FIDO Certified L2 · stays on this security key · gives
 * the highest level of sign-in (AAL3)". AAL3 is named only when the key reaches it: a key that doesn't is not a
 * problem to its owner. `warning` is set when the model was reported compromised: what that means and what to do.
 */
export function passkeyInWords(s: PasskeyStanding): { summary: string; warning?: string } {
  const parts: string[] = [];
  if (s.attested && s.model) parts.push(s.model);
  if (s.attested && s.certification) parts.push(certificationLabel(s.certification));
  parts.push(s.deviceBound ? (s.securityKey ? 'stays on this security key' : 'stays on this device') : 'can sync between your devices');
  if (s.aal === 3 && !s.compromised) parts.push('gives the highest level of sign-in (AAL3)');
  if (!s.compromised) return { summary: parts.join(' · ') };
  const lost = s.compromised.consequence === 'refuse' ? 'You can no longer use it to sign in.' : 'It no longer gives the highest level of sign-in (AAL3).';
  return {
    summary: parts.join(' · '),
    warning: `The FIDO Alliance has reported a security problem with this model: ${s.compromised.words}. ${lost} Contact your registration authority to get a replacement.`,
  };
}
