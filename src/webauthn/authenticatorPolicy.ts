/**
 * The organisation's authenticator policy: which passkeys may be registered
 * and what a passkey needs to give AAL3. An RA Manager sets it in the console
 * (/admin/policy); `latchkey doctor` prints it. It is checked at every passkey
 * registration (checkRegistration) and weighed at every sign-in (the passkey
 * kind's assurance asks qualifiesForAal3; refusesSignIn stops a compromised
 * model when the policy says so).
 *
 * What it can say, after Entra ID's attestation enforcement and AAGUID lists
 * and Okta's AAGUID groups:
 * - models allowed (empty: any) and denied, by AAGUID;
 * - a minimum FIDO certification level for every new passkey;
 * - whether synced passkeys are allowed, for everyone or not for holders of
 *   named console roles (for example: RA agents must use device-bound keys);
 * - the certification AAL3 needs on top of NIST SP 800-63B rev 4's
 *   device-bound, user-verifying, attested key;
 * - what a model marked compromised in the metadata loses: AAL3, or sign-in.
 */
import { Type, type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import type { Role } from '../db/schema.js';
import { certificationLabel, CERTIFICATION_LEVELS, meetsCertification, type CertificationLevel, type MetadataCatalogue } from './metadata/catalogue.js';
import { providerFor } from './aaguids.js';
import { ROLES } from '../admin/roles.js';

/** An AAGUID as the policy keeps it: lower-case, hyphenated. */
export const AAGUID_PATTERN = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
const Aaguid = Type.String({ pattern: AAGUID_PATTERN });
// Type.Enum, not a Union of mapped Literals: a mapped array loses its element types and the static type became never.
const Certification = Type.Enum(CERTIFICATION_LEVELS);
// From the one list of roles: a role added there is one the policy can name, and a stored policy naming it still reads.
const RoleName = Type.Enum(ROLES);

export const AuthenticatorPolicySchema = Type.Object(
  {
    /** AAGUIDs of the models that may be registered; empty: any model. A list needs verified attestation. */
    allowedModels: Type.Array(Aaguid, { maxItems: 500 }),
    /** AAGUIDs of models that may never be registered. */
    deniedModels: Type.Array(Aaguid, { maxItems: 500 }),
    /** Every new passkey must be of a model certified at least this (needs verified attestation); null: no minimum. */
    minimumCertification: Type.Union([Type.Null(), Certification]),
    /** Whether passkeys that sync between devices (backup eligible) may be registered at all. */
    syncedPasskeys: Type.Union([Type.Literal('allowed'), Type.Literal('not-allowed')]),
    /** Holders of these console roles must register device-bound passkeys even when synced ones are allowed. */
    deviceBoundRoles: Type.Array(RoleName, { maxItems: 4 }),
    /** AAL3 needs a model certified at least this; null: any model in the metadata. */
    aal3MinimumCertification: Type.Union([Type.Null(), Certification]),
    /** A model the metadata marks compromised: stops counting for AAL3, or stops signing in at all. */
    compromised: Type.Union([Type.Literal('no-aal3'), Type.Literal('refuse')]),
  },
  { additionalProperties: false },
);
export type AuthenticatorPolicy = Static<typeof AuthenticatorPolicySchema>;

/** Until an RA Manager sets one: any passkey may be registered; AAL3 needs a certified-or-not model in the metadata. */
export const DEFAULT_POLICY: AuthenticatorPolicy = {
  allowedModels: [],
  deniedModels: [],
  minimumCertification: null,
  syncedPasskeys: 'allowed',
  deviceBoundRoles: [],
  aal3MinimumCertification: null,
  compromised: 'no-aal3',
};

const checkPolicy = Compile(AuthenticatorPolicySchema);

/** A stored policy read back; the default when it is missing or doesn't match the schema. */
export function readPolicy(json: string | undefined): AuthenticatorPolicy {
  return parsePolicy(json) ?? DEFAULT_POLICY;
}

/** A stored policy, or undefined when there is none or it doesn't match the schema. */
export function parsePolicy(json: string | undefined): AuthenticatorPolicy | undefined {
  if (json === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(json);
    return checkPolicy.Check(parsed) ? (parsed as AuthenticatorPolicy) : undefined;
  } catch {
    return undefined;
  }
}

/** What a registration's attestation showed (attestation.ts), kept in the passkey's config. */
export interface AttestationFacts {
  /** The statement's signature verified and its certificate chain led to a root the metadata gives for this AAGUID. */
  verified: boolean;
  /** The model's name from the metadata, when verified. */
  model?: string;
  certification?: CertificationLevel;
}

/** What is known of a passkey being registered or already registered. */
export interface PasskeyFacts {
  aaguid: string;
  /** Backup-eligible flag clear: the key can't leave the device. */
  deviceBound: boolean;
  attestation: AttestationFacts;
}

/** Whether a registration needs attestation conveyance "direct": only to check what the policy asks about the model. */
export function policyNeedsAttestation(policy: AuthenticatorPolicy): boolean {
  return policy.allowedModels.length > 0 || policy.deniedModels.length > 0 || policy.minimumCertification !== null;
}

/** The device in words for messages: its metadata name, a known provider's name, or "This passkey". */
export function deviceName(facts: Pick<PasskeyFacts, 'aaguid' | 'attestation'>, catalogue: MetadataCatalogue): string {
  const known = facts.attestation.model ?? catalogue.get(facts.aaguid)?.description;
  if (known) return known;
  const provider = providerFor(facts.aaguid);
  return provider.kind === 'unknown' ? 'This passkey' : provider.name;
}

function modelNames(aaguids: string[], catalogue: MetadataCatalogue): string {
  const names = [...new Set(aaguids.map((a) => catalogue.get(a)?.description ?? providerFor(a).name))];
  return names.length > 4 ? `${names.slice(0, 4).join(', ')} and ${names.length - 4} more` : names.join(', ');
}

export type PolicyDecision = { ok: true } | { ok: false; reason: string; message: string };

/**
 * Whether a new passkey is inside the policy; when it isn't, a message that names the device and says what is
 * allowed. `roles` are the console roles of the person it is for.
 */
export function checkRegistration(policy: AuthenticatorPolicy, catalogue: MetadataCatalogue, facts: PasskeyFacts, roles: readonly Role[]): PolicyDecision {
  const device = deviceName(facts, catalogue);
  const entry = facts.attestation.verified ? catalogue.get(facts.aaguid) : undefined;
  const refuse = (reason: string, allowed: string) => ({ ok: false as const, reason, message: `${device} can’t be used here. ${allowed}` });
  if (catalogue.get(facts.aaguid)?.compromised) {
    return refuse('model_compromised', 'The FIDO Alliance has reported a security problem with this model. Use another passkey or security key.');
  }
  if (policy.deniedModels.includes(facts.aaguid)) {
    return refuse('model_denied', `Your organisation does not allow this model. ${policy.allowedModels.length ? `It allows: ${modelNames(policy.allowedModels, catalogue)}.` : 'Use another passkey or security key.'}`);
  }
  if (policy.allowedModels.length && !(entry && policy.allowedModels.includes(facts.aaguid))) {
    return refuse('model_not_allowed', `Your organisation allows only these models: ${modelNames(policy.allowedModels, catalogue)}.`);
  }
  if (policy.minimumCertification && !(entry && meetsCertification(entry.certification, policy.minimumCertification))) {
    return refuse('certification_too_low', `Your organisation needs a security key or passkey that is ${certificationLabel(policy.minimumCertification)} or higher${entry ? `; this model is ${certificationLabel(entry.certification)}` : ''}.`);
  }
  if (!facts.deviceBound) {
    if (policy.syncedPasskeys === 'not-allowed') {
      return refuse('synced_not_allowed', 'It is a synced passkey, and your organisation needs one that stays on a single device, such as a security key or a device-bound passkey.');
    }
    const role = roles.find((r) => policy.deviceBoundRoles.includes(r));
    if (role) {
      return refuse('synced_not_allowed', 'It is a synced passkey, and your organisation needs people with a registration authority role to use one that stays on a single device, such as a security key.');
    }
  }
  return { ok: true };
}

/**
 * AAL3 (NIST SP 800-63B rev 4 §2.3.2, phishing-resistant and non-exportable): a device-bound passkey whose
 * attestation verified to a metadata entry the policy accepts — not denied, allowed when there is a list,
 * certified enough, not marked compromised. User verification is checked at every sign-in.
 */
export function qualifiesForAal3(policy: AuthenticatorPolicy, catalogue: MetadataCatalogue, facts: PasskeyFacts): boolean {
  if (!facts.deviceBound || !facts.attestation.verified) return false;
  const entry = catalogue.get(facts.aaguid);
  if (!entry || entry.compromised) return false;
  if (policy.deniedModels.includes(facts.aaguid)) return false;
  if (policy.allowedModels.length && !policy.allowedModels.includes(facts.aaguid)) return false;
  return policy.aal3MinimumCertification === null || meetsCertification(entry.certification, policy.aal3MinimumCertification);
}

/** Why a passkey doesn't reach AAL3, in words for its owner; undefined when it does. */
export function whyNotAal3(policy: AuthenticatorPolicy, catalogue: MetadataCatalogue, facts: PasskeyFacts): string | undefined {
  if (qualifiesForAal3(policy, catalogue, facts)) return undefined;
  if (!facts.deviceBound) return 'It is synced between devices.';
  if (!facts.attestation.verified) return 'Its make and model were not confirmed when it was set up.';
  const entry = catalogue.get(facts.aaguid);
  if (!entry) return 'Its model is not in the FIDO Alliance metadata.';
  if (entry.compromised) return 'The FIDO Alliance has reported a security problem with its model.';
  if (policy.deniedModels.includes(facts.aaguid) || (policy.allowedModels.length && !policy.allowedModels.includes(facts.aaguid))) return 'Your organisation does not allow its model.';
  return `Its model is ${certificationLabel(entry.certification)}; your organisation needs ${certificationLabel(policy.aal3MinimumCertification ?? undefined)} or higher.`;
}

/** Whether a passkey may no longer sign in: its model is marked compromised and the policy says to refuse it. */
export function refusesSignIn(policy: AuthenticatorPolicy, catalogue: MetadataCatalogue, aaguid: string): boolean {
  return policy.compromised === 'refuse' && catalogue.get(aaguid)?.compromised !== undefined;
}
