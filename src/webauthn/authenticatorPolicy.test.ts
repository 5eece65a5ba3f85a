import { describe, expect, it } from 'vitest';
import type { AuthenticatorStatus } from '@simplewebauthn/server';
import { catalogueWith, metadataStatement } from '../../test/support/metadataStatements.js';
import {
  checkRegistration,
  DEFAULT_POLICY,
  deviceName,
  policyNeedsAttestation,
  qualifiesForAal3,
  readPolicy,
  refusesSignIn,
  whyNotAal3,
  type AuthenticatorPolicy,
  type PasskeyFacts,
} from './authenticatorPolicy.js';
import { COMPROMISED_STATUSES } from './metadata/catalogue.js';

const L2_KEY = '5b1f0c3e-8d2a-4f6b-9c7e-1a2b3c4d5e6f';
const L1_KEY = '6c2a1d4f-9e3b-4a7c-8d8f-2b3c4d5e6f70';
const UNCERTIFIED_KEY = '7d3b2e5a-af4c-4b8d-9e90-3c4d5e6f7081';
const UNLISTED = 'd1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5f6';
const ICLOUD = 'fbfc3007-154e-4ecc-8c0b-6e020557d7bd';
const NO_AAGUID = '00000000-0000-0000-0000-000000000000';
/** One compromised model per compromising status, AAGUIDs 00000000-…-00000000000N. */
const COMPROMISED = COMPROMISED_STATUSES.map((status, i) => ({ status, aaguid: `c0000000-0000-4000-8000-${String(i + 1).padStart(12, '0')}` }));

const statement = (aaguid: string, description: string) => metadataStatement({ aaguid, description, attestationRootCertificates: [] });
const catalogue = catalogueWith([
  { statement: statement(L2_KEY, 'Test Security Key L2'), statusReports: [{ status: 'FIDO_CERTIFIED_L2' }] },
  { statement: statement(L1_KEY, 'Test Security Key L1'), statusReports: [{ status: 'FIDO_CERTIFIED_L1' }] },
  { statement: statement(UNCERTIFIED_KEY, 'Uncertified Key'), statusReports: [{ status: 'NOT_FIDO_CERTIFIED' }] },
  ...COMPROMISED.map(({ status, aaguid }) => ({
    statement: statement(aaguid, `Compromised Key (${status})`),
    statusReports: [{ status: 'FIDO_CERTIFIED_L2' as AuthenticatorStatus }, { status }],
  })),
]);

/** A passkey of this model: device-bound and attested (the model named as metadata names it) unless told. */
function passkey(aaguid: string, o: { deviceBound?: boolean; verified?: boolean } = {}): PasskeyFacts {
  const verified = o.verified ?? true;
  const entry = catalogue.get(aaguid);
  return {
    aaguid,
    deviceBound: o.deviceBound ?? true,
    attestation: verified && entry ? { verified, model: entry.description, ...(entry.certification ? { certification: entry.certification } : {}) } : { verified: false },
  };
}

const policy = (p: Partial<AuthenticatorPolicy>): AuthenticatorPolicy => ({ ...DEFAULT_POLICY, ...p });

describe('checkRegistration', () => {
  it.each<[string, AuthenticatorPolicy, PasskeyFacts]>([
    ['any passkey under the default policy: synced, unattested', DEFAULT_POLICY, passkey(ICLOUD, { deviceBound: false, verified: false })],
    ['any passkey under the default policy: an unlisted model', DEFAULT_POLICY, passkey(UNLISTED, { verified: false })],
    ['an allowed model, attested', policy({ allowedModels: [L1_KEY, L2_KEY] }), passkey(L2_KEY)],
    ['a model certified above the minimum', policy({ minimumCertification: 'FIDO_CERTIFIED_L1plus' }), passkey(L2_KEY)],
    ['a model certified at the minimum', policy({ minimumCertification: 'FIDO_CERTIFIED_L2' }), passkey(L2_KEY)],
    ['a device-bound passkey when synced ones are not allowed', policy({ syncedPasskeys: 'not-allowed' }), passkey(UNLISTED, { verified: false })],
    ['a model other than the denied one', policy({ deniedModels: [L1_KEY] }), passkey(L2_KEY, { verified: false })],
  ])('accepts %s', (_label, p, facts) => {
    expect(checkRegistration(p, catalogue, facts, [])).toEqual({ ok: true });
  });

  it.each<[string, AuthenticatorPolicy, PasskeyFacts, string, string]>([
    [
      'a model the metadata marks compromised, whatever the policy',
      DEFAULT_POLICY,
      passkey(COMPROMISED[0]!.aaguid),
      'model_compromised',
      'Compromised Key (REVOKED) can’t be used here. The FIDO Alliance has reported a security problem with this model. Use another passkey or security key.',
    ],
    [
      'a denied model, when there is no allow list',
      policy({ deniedModels: [L2_KEY] }),
      passkey(L2_KEY),
      'model_denied',
      'Test Security Key L2 can’t be used here. Your organisation does not allow this model. Use another passkey or security key.',
    ],
    [
      'a denied model, naming the allowed ones',
      policy({ deniedModels: [L2_KEY], allowedModels: [L1_KEY, ICLOUD] }),
      passkey(L2_KEY),
      'model_denied',
      'Test Security Key L2 can’t be used here. Your organisation does not allow this model. It allows: Test Security Key L1, iCloud Keychain.',
    ],
    [
      'a denied model even unattested (the AAGUID it claims)',
      policy({ deniedModels: [ICLOUD] }),
      passkey(ICLOUD, { deviceBound: false, verified: false }),
      'model_denied',
      'iCloud Keychain can’t be used here. Your organisation does not allow this model. Use another passkey or security key.',
    ],
    [
      'a model not on the allow list',
      policy({ allowedModels: [L1_KEY] }),
      passkey(L2_KEY),
      'model_not_allowed',
      'Test Security Key L2 can’t be used here. Your organisation allows only these models: Test Security Key L1.',
    ],
    [
      'an allowed model whose attestation did not verify (an AAGUID is only a claim)',
      policy({ allowedModels: [L1_KEY] }),
      passkey(L1_KEY, { verified: false }),
      'model_not_allowed',
      'Test Security Key L1 can’t be used here. Your organisation allows only these models: Test Security Key L1.',
    ],
    [
      'a model certified below the minimum',
      policy({ minimumCertification: 'FIDO_CERTIFIED_L2' }),
      passkey(L1_KEY),
      'certification_too_low',
      'Test Security Key L1 can’t be used here. Your organisation needs a security key or passkey that is FIDO Certified L2 or higher; this model is FIDO Certified L1.',
    ],
    [
      'an uncertified model under a minimum',
      policy({ minimumCertification: 'FIDO_CERTIFIED_L1' }),
      passkey(UNCERTIFIED_KEY),
      'certification_too_low',
      'Uncertified Key can’t be used here. Your organisation needs a security key or passkey that is FIDO Certified L1 or higher; this model is Not FIDO certified.',
    ],
    [
      'an unattested passkey under a minimum, named "This passkey" when nothing names it',
      policy({ minimumCertification: 'FIDO_CERTIFIED_L1' }),
      passkey(NO_AAGUID, { verified: false }),
      'certification_too_low',
      'This passkey can’t be used here. Your organisation needs a security key or passkey that is FIDO Certified L1 or higher.',
    ],
    [
      'a synced passkey when synced ones are not allowed, naming its provider',
      policy({ syncedPasskeys: 'not-allowed' }),
      passkey(ICLOUD, { deviceBound: false, verified: false }),
      'synced_not_allowed',
      'iCloud Keychain can’t be used here. It is a synced passkey, and your organisation needs one that stays on a single device, such as a security key or a device-bound passkey.',
    ],
  ])('refuses %s', (_label, p, facts, reason, message) => {
    expect(checkRegistration(p, catalogue, facts, [])).toEqual({ ok: false, reason, message });
  });

  it('refuses a synced passkey for the holder of a role that must use device-bound ones, and only for them', () => {
    const p = policy({ deviceBoundRoles: ['ra_agent', 'ra_agent_advanced'] });
    const synced = passkey(ICLOUD, { deviceBound: false, verified: false });
    expect(checkRegistration(p, catalogue, synced, ['auditor', 'ra_agent'])).toEqual({
      ok: false,
      reason: 'synced_not_allowed',
      message: 'iCloud Keychain can’t be used here. It is a synced passkey, and your organisation needs people with a registration authority role to use one that stays on a single device, such as a security key.',
    });
    expect(checkRegistration(p, catalogue, synced, ['auditor'])).toEqual({ ok: true });
    expect(checkRegistration(p, catalogue, synced, [])).toEqual({ ok: true });
    expect(checkRegistration(p, catalogue, passkey(L2_KEY), ['ra_agent'])).toEqual({ ok: true });
  });

  it('refuses every compromised model, each status by name', () => {
    for (const { aaguid, status } of COMPROMISED) {
      expect(checkRegistration(DEFAULT_POLICY, catalogue, passkey(aaguid), []), status).toMatchObject({ ok: false, reason: 'model_compromised' });
    }
  });
});

describe('deviceName', () => {
  it.each([
    ['the attested model', passkey(L2_KEY), 'Test Security Key L2'],
    ['the metadata’s name for the AAGUID it claims', passkey(L1_KEY, { verified: false }), 'Test Security Key L1'],
    ['a known provider', passkey(ICLOUD, { verified: false }), 'iCloud Keychain'],
    ['"This passkey" for an unknown AAGUID', passkey(UNLISTED, { verified: false }), 'This passkey'],
    ['"This passkey" for no AAGUID', passkey(NO_AAGUID, { verified: false }), 'This passkey'],
  ])('is %s', (_label, facts, name) => {
    expect(deviceName(facts, catalogue)).toBe(name);
  });
});

describe('qualifiesForAal3 and whyNotAal3', () => {
  it.each<[string, AuthenticatorPolicy, PasskeyFacts]>([
    ['a device-bound, attested model in the metadata (default policy)', DEFAULT_POLICY, passkey(L2_KEY)],
    ['an uncertified model when the policy sets no minimum', DEFAULT_POLICY, passkey(UNCERTIFIED_KEY)],
    ['a model on the allow list', policy({ allowedModels: [L2_KEY] }), passkey(L2_KEY)],
    ['a model certified at the AAL3 minimum', policy({ aal3MinimumCertification: 'FIDO_CERTIFIED_L2' }), passkey(L2_KEY)],
    ['a model certified above the AAL3 minimum', policy({ aal3MinimumCertification: 'FIDO_CERTIFIED_L1plus' }), passkey(L2_KEY)],
  ])('AAL3: %s', (_label, p, facts) => {
    expect(qualifiesForAal3(p, catalogue, facts)).toBe(true);
    expect(whyNotAal3(p, catalogue, facts)).toBeUndefined();
  });

  it.each<[string, AuthenticatorPolicy, PasskeyFacts, string]>([
    ['synced', DEFAULT_POLICY, passkey(L2_KEY, { deviceBound: false }), 'It is synced between devices.'],
    ['attestation not verified', DEFAULT_POLICY, passkey(L2_KEY, { verified: false }), 'Its make and model were not confirmed when it was set up.'],
    // Verified when registered, and the metadata has since dropped the model.
    ['not in the metadata', DEFAULT_POLICY, { aaguid: UNLISTED, deviceBound: true, attestation: { verified: true, model: 'Gone Key' } }, 'Its model is not in the FIDO Alliance metadata.'],
    ['denied', policy({ deniedModels: [L2_KEY] }), passkey(L2_KEY), 'Your organisation does not allow its model.'],
    ['not on the allow list', policy({ allowedModels: [L1_KEY] }), passkey(L2_KEY), 'Your organisation does not allow its model.'],
    ['certified below the AAL3 minimum', policy({ aal3MinimumCertification: 'FIDO_CERTIFIED_L2' }), passkey(L1_KEY), 'Its model is FIDO Certified L1; your organisation needs FIDO Certified L2 or higher.'],
    ['uncertified under an AAL3 minimum', policy({ aal3MinimumCertification: 'FIDO_CERTIFIED_L1' }), passkey(UNCERTIFIED_KEY), 'Its model is Not FIDO certified; your organisation needs FIDO Certified L1 or higher.'],
  ])('not AAL3: %s', (_label, p, facts, why) => {
    expect(qualifiesForAal3(p, catalogue, facts)).toBe(false);
    expect(whyNotAal3(p, catalogue, facts)).toBe(why);
  });

  it.each(COMPROMISED)('not AAL3: a model marked $status, under either compromised policy', ({ aaguid }) => {
    for (const compromised of ['no-aal3', 'refuse'] as const) {
      const p = policy({ compromised });
      expect(qualifiesForAal3(p, catalogue, passkey(aaguid))).toBe(false);
      expect(whyNotAal3(p, catalogue, passkey(aaguid))).toBe('The FIDO Alliance has reported a security problem with its model.');
    }
  });
});

describe('refusesSignIn', () => {
  it('refuses a compromised model only when the policy says to refuse', () => {
    for (const { aaguid, status } of COMPROMISED) {
      expect(refusesSignIn(policy({ compromised: 'refuse' }), catalogue, aaguid), status).toBe(true);
      expect(refusesSignIn(policy({ compromised: 'no-aal3' }), catalogue, aaguid), status).toBe(false);
    }
  });

  it('never refuses a sound model, an unlisted one or one with no AAGUID', () => {
    const refuse = policy({ compromised: 'refuse' });
    for (const aaguid of [L2_KEY, UNCERTIFIED_KEY, UNLISTED, NO_AAGUID]) expect(refusesSignIn(refuse, catalogue, aaguid), aaguid).toBe(false);
  });

  it('reads the AAGUID in any case', () => {
    expect(refusesSignIn(policy({ compromised: 'refuse' }), catalogue, COMPROMISED[1]!.aaguid.toUpperCase())).toBe(true);
  });
});

describe('readPolicy', () => {
  const custom: AuthenticatorPolicy = {
    allowedModels: [L1_KEY, L2_KEY],
    deniedModels: [UNCERTIFIED_KEY],
    minimumCertification: 'FIDO_CERTIFIED_L1',
    syncedPasskeys: 'not-allowed',
    deviceBoundRoles: ['ra_manager'],
    aal3MinimumCertification: 'FIDO_CERTIFIED_L2',
    compromised: 'refuse',
  };

  it('reads back a stored policy', () => {
    expect(readPolicy(JSON.stringify(custom))).toEqual(custom);
  });

  it.each([
    ['nothing stored', undefined],
    ['an empty string', ''],
    ['bad JSON', '{"allowedModels": ['],
    ['JSON null', 'null'],
    ['an array', '[]'],
    ['an empty object', '{}'],
    ['a property missing', JSON.stringify({ ...custom, compromised: undefined })],
    ['a property the schema doesn’t know', JSON.stringify({ ...custom, extra: true })],
    ['an upper-case AAGUID', JSON.stringify({ ...custom, allowedModels: [L1_KEY.toUpperCase()] })],
    ['a malformed AAGUID', JSON.stringify({ ...custom, deniedModels: ['yubikey'] })],
    ['an unknown certification level', JSON.stringify({ ...custom, minimumCertification: 'FIDO_CERTIFIED' })],
    ['an unknown role', JSON.stringify({ ...custom, deviceBoundRoles: ['admin'] })],
    ['an unknown synced setting', JSON.stringify({ ...custom, syncedPasskeys: 'sometimes' })],
  ])('gives the default policy for %s', (_label, json) => {
    expect(readPolicy(json)).toEqual(DEFAULT_POLICY);
  });
});

describe('policyNeedsAttestation', () => {
  it.each<[string, Partial<AuthenticatorPolicy>, boolean]>([
    ['the default policy', {}, false],
    ['an allow list', { allowedModels: [L1_KEY] }, true],
    ['a deny list', { deniedModels: [L1_KEY] }, true],
    ['a minimum certification', { minimumCertification: 'FIDO_CERTIFIED_L1' }, true],
    // The backup flags are in authenticator data, which every registration signs; no statement needed.
    ['synced passkeys not allowed', { syncedPasskeys: 'not-allowed', deviceBoundRoles: ['ra_agent'] }, false],
    ['only an AAL3 minimum (AAL3 enrolment asks for attestation itself)', { aal3MinimumCertification: 'FIDO_CERTIFIED_L2' }, false],
    ['refusing compromised models', { compromised: 'refuse' }, false],
  ])('%s: %s', (_label, p, needs) => {
    expect(policyNeedsAttestation(policy(p))).toBe(needs);
  });
});
