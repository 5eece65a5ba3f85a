import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/index.js';
import { aalOfAcr, acrFor, assessSignIn, methodOf } from './assurance.js';

describe('assessSignIn', () => {
  it('a synced passkey with user verification is AAL2, phishing-resistant, swk', () => {
    expect(assessSignIn({ kind: 'passkey', userVerified: true, deviceBound: false })).toEqual({ aal: 2, phishingResistant: true, amr: ['swk', 'user', 'mfa'] });
  });
  it('a device-bound passkey is hwk; with verified attestation it reaches AAL3', () => {
    expect(assessSignIn({ kind: 'passkey', userVerified: true, deviceBound: true }).amr).toEqual(['hwk', 'user', 'mfa']);
    expect(assessSignIn({ kind: 'passkey', userVerified: true, deviceBound: true }).aal).toBe(2);
    expect(assessSignIn({ kind: 'passkey', userVerified: true, deviceBound: true, attested: true }).aal).toBe(3);
    // A synced key never reaches AAL3, attested or not.
    expect(assessSignIn({ kind: 'passkey', userVerified: true, deviceBound: false, attested: true }).aal).toBe(2);
  });
  it('a passkey without user verification is one factor: AAL1', () => {
    expect(assessSignIn({ kind: 'passkey', userVerified: false, deviceBound: true })).toEqual({ aal: 1, phishingResistant: true, amr: ['hwk'] });
  });
  it('password + app is AAL2 but not phishing-resistant; password alone AAL1', () => {
    expect(assessSignIn({ kind: 'password+otp' })).toEqual({ aal: 2, phishingResistant: false, amr: ['pwd', 'otp', 'mfa'] });
    expect(assessSignIn({ kind: 'password' })).toEqual({ aal: 1, phishingResistant: false, amr: ['pwd'] });
  });
  it('a linked account has the upstream provider\'s configured level', () => {
    expect(assessSignIn({ kind: 'linked-account', upstreamAal: 1 })).toEqual({ aal: 1, phishingResistant: false, amr: ['fed'] });
    expect(assessSignIn({ kind: 'linked-account', upstreamAal: 3 }).aal).toBe(3);
  });
});

describe('methodOf', () => {
  it('reads device binding from backup eligibility', () => {
    expect(methodOf({ type: 'passkey', backup_eligible: 0 })).toEqual({ kind: 'passkey', userVerified: true, deviceBound: true, attested: false });
    expect(methodOf({ type: 'passkey', backup_eligible: 1 })).toMatchObject({ deviceBound: false });
    expect(methodOf({ type: 'totp', backup_eligible: 0 })).toEqual({ kind: 'password+otp' });
    expect(methodOf({ type: 'linked-account', backup_eligible: 0 }, 1)).toEqual({ kind: 'linked-account', upstreamAal: 1 });
  });
});

describe('acr values', () => {
  it('default to the idmanagement.gov URIs and are configurable', () => {
    const config = loadConfig({});
    expect(acrFor(config, 2)).toBe('http://idmanagement.gov/ns/assurance/aal/2');
    expect(aalOfAcr(config, 'http://idmanagement.gov/ns/assurance/aal/3')).toBe(3);
    expect(aalOfAcr(config, 'urn:unknown')).toBeUndefined();
    const custom = loadConfig({ LATCHKEY_OIDC_ACR_AAL2: 'urn:example:aal2' });
    expect(acrFor(custom, 2)).toBe('urn:example:aal2');
    expect(() => loadConfig({ LATCHKEY_OIDC_ACR_AAL1: 'has space' })).toThrow(/LATCHKEY_OIDC_ACR_AAL1/);
    expect(() => loadConfig({ LATCHKEY_OIDC_ACR_AAL1: 'urn:same', LATCHKEY_OIDC_ACR_AAL2: 'urn:same' })).toThrow(/must all be different/);
  });
});
