/**
 * Passkeys (WebAuthn discoverable credentials): the kind people are moved
 * onto. Its data lives in the passkey columns the sign-in path reads
 * (src/webauthn); `config` keeps what its attestation showed when it was
 * registered (src/webauthn/attestation.ts).
 */
import { Type } from 'typebox';
import { defineKind, type Aal, type Assurance } from '../authenticatorKind.js';
import { CERTIFICATION_LEVELS } from '../../webauthn/metadata/catalogue.js';
import { qualifiesForAal3, refusesSignIn } from '../../webauthn/authenticatorPolicy.js';
import { PasskeyProvider, SyncBadge } from '../../flows/settings/views.js';
import { passkeySelfServiceRoutes } from './selfServiceRoutes.js';

export const PASSKEY_TYPE = 'passkey';

/** What a passkey sign-in proved. */
export interface PasskeyUse {
  userVerified: boolean;
  /** Not backup-eligible: the private key can't leave the device (WebAuthn L3 §6.1.3). */
  deviceBound: boolean;
  /** Its attestation was verified against a trusted root. */
  attested: boolean;
}

/**
 * | passkey                                          | AAL | amr             |
 * | ------------------------------------------------ | --- | --------------- |
 * | user verification, synced                        | 2   | swk, user, mfa  |
 * | user verification, device-bound                  | 2   | hwk, user, mfa  |
 * | user verification, device-bound, attested        | 3   | hwk, user, mfa  |
 * | no user verification                             | 1   | swk or hwk      |
 */
export function passkeyAssurance(use: PasskeyUse): Assurance {
  const key = use.deviceBound ? 'hwk' : 'swk';
  // Without user verification a passkey is one factor (something you have): AAL1.
  if (!use.userVerified) return { aal: 1, phishingResistant: true, amr: [key] };
  // SP 800-63B rev 4 §2.3.2: AAL3 needs a non-exportable (device-bound) key whose provenance is known.
  const aal: Aal = use.deviceBound && use.attested ? 3 : 2;
  return { aal, phishingResistant: true, amr: [key, 'user', 'mfa'] };
}

/**
 * A passkey's configuration: its attestation as verified at registration. Rows from before issue 13 have `{}`
 * (nothing attested).
 */
export const PasskeyConfigSchema = Type.Object({
  attestation: Type.Optional(
    Type.Object({
      verified: Type.Boolean(),
      model: Type.Optional(Type.String({ maxLength: 200 })),
      certification: Type.Optional(Type.Enum(CERTIFICATION_LEVELS)),
    }),
  ),
});

export const passkeyKind = defineKind({
  type: PASSKEY_TYPE,
  config: PasskeyConfigSchema,
  noun: 'passkey',
  // Passkey sign-in always requires user verification (webauthn/verifyAssertion.ts refuses assertions without it).
  // Attested: its attestation verified to a metadata entry the policy accepts now (a model marked compromised
  // since, or denied since, no longer counts).
  assurance: (a, config, { trust }) =>
    // A model reported compromised that the policy refuses can't sign anyone in: it reaches no level at all.
    refusesSignIn(trust.policy(), trust.metadata(), a.aaguid)
      ? undefined
      : passkeyAssurance({
          userVerified: true,
          deviceBound: a.backup_eligible === 0,
          attested: qualifiesForAal3(trust.policy(), trust.metadata(), trust.factsOf(a, config.attestation)),
        }),
  stepUp: 'primary',
  display: (a) => ({ label: 'Passkey', provider: <PasskeyProvider aaguid={a.aaguid} />, badges: <SyncBadge authenticator={a} /> }),
  settingsSection: 'passkeys',
  selfServiceChoices: () => [
    {
      value: 'passkey',
      label: 'Passkey',
      what: 'passkey',
      hint: 'Sign in with your fingerprint, face, PIN or screen lock on your phone, computer or security key.',
      path: (flowId) => `/add-authenticator/${flowId}/passkey`,
    },
  ],
  agentIssue: [
    {
      value: 'passkey',
      label: 'Passkey',
      hint: 'On the person’s phone, tablet, computer or security key. They sign in with their fingerprint, face, PIN or screen lock.',
      path: (userId) => `/admin/users/${userId}/issue/passkey`,
    },
    {
      value: 'security-key',
      label: 'Security key (AAL3)',
      hint: 'A FIDO2-certified security key with a PIN (such as YubiKey, Titan or Token2), whose make and model are confirmed when it is registered. It gives the highest level of sign-in (AAL3), which clinical systems need.',
      path: (userId) => `/admin/users/${userId}/issue/security-key`,
    },
  ],
  // Its self-service pages (/add-authenticator/:flowId/passkey…).
  routes: passkeySelfServiceRoutes,
  auditEvents: {
    'passkey.added': 'Passkey added',
    'passkey.renamed': 'Passkey renamed',
    'passkey.removed': 'Passkey removed',
    'passkey.counter_regressed': 'Passkey refused: possible copied authenticator',
    'passkey.refused': 'Passkey or security key refused by the authenticator policy',
    'passkey.model_compromised': 'Passkey’s model reported compromised by the FIDO Alliance',
  },
});
