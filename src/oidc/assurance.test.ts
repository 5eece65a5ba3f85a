import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/index.js';
import { aalOfAcr, acrFor, assuranceOutcome, requiredAssurance } from './assurance.js';

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

describe('requiredAssurance: the one rule for what a request needs', () => {
  const config = loadConfig({});
  const [a1, a2, a3] = [config.oidcAcr[1], config.oidcAcr[2], config.oidcAcr[3]];
  const essential = (acr: object) => JSON.stringify({ id_token: { acr: { essential: true, ...acr } } });
  it('the service\'s level, raised (never lowered) by acr_values; a list is alternatives, unknown values are ignored', () => {
    expect(requiredAssurance(config, 2, {})).toEqual({ aal: 2 });
    expect(requiredAssurance(config, 2, { acr_values: a1 })).toEqual({ aal: 2 });
    expect(requiredAssurance(config, 1, { acr_values: a3 })).toEqual({ aal: 3 });
    expect(requiredAssurance(config, 1, { acr_values: `${a3} ${a2}` })).toEqual({ aal: 2 });
    expect(requiredAssurance(config, 1, { acr_values: 'urn:example:other' })).toEqual({ aal: 1 });
  });
  it('an acr in the claims parameter counts too; an essential one Latchkey never issues cannot be met', () => {
    expect(requiredAssurance(config, 1, { claims: essential({ value: a3 }) })).toEqual({ aal: 3 });
    expect(requiredAssurance(config, 1, { claims: essential({ values: [a2, a3] }) })).toEqual({ aal: 2 });
    expect(requiredAssurance(config, 1, { acr_values: a1, claims: essential({ value: a2 }) })).toEqual({ aal: 2 });
    expect(requiredAssurance(config, 2, { claims: essential({ value: 'urn:example:other' }) })).toEqual({ unknownAcr: ['urn:example:other'] });
    expect(requiredAssurance(config, 2, { claims: JSON.stringify({ id_token: { acr: { value: 'urn:example:other' } } }) })).toEqual({ aal: 2 });
  });
  it('the outcome: enough, step-up to a level the person reaches, or unreachable', () => {
    expect(assuranceOutcome({ aal: 2 }, 2, 0)).toBe('enough');
    expect(assuranceOutcome({ aal: 2 }, 1, 2)).toBe('step-up');
    expect(assuranceOutcome({ aal: 3 }, 2, 2)).toBe('unreachable');
    expect(assuranceOutcome({ unknownAcr: ['x'] }, 3, 3)).toBe('unreachable');
  });
});
