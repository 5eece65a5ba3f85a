import { describe, expect, it } from 'vitest';
import { cleanPasskeyName, defaultPasskeyName } from './passkeyNames.js';
import { providerFor } from './aaguids.js';

const ZERO = '00000000-0000-0000-0000-000000000000';

describe('defaultPasskeyName', () => {
  it('uses the provider when the AAGUID is known', () => {
    expect(defaultPasskeyName({ aaguid: 'fbfc3007-154e-4ecc-8c0b-6e020557d7bd', transports: ['internal', 'hybrid'] })).toBe('iCloud Keychain');
    expect(defaultPasskeyName({ aaguid: 'CB69481E-8FF7-4039-93EC-0A2729A154A8', transports: ['usb'] })).toBe('YubiKey 5 Series');
  });

  it('otherwise says where the passkey lives', () => {
    expect(defaultPasskeyName({ aaguid: ZERO, attachment: 'platform', transports: ['internal', 'hybrid'] })).toBe('Passkey on this device');
    expect(defaultPasskeyName({ aaguid: ZERO, attachment: 'cross-platform', transports: ['usb'] })).toBe('Security key');
    expect(defaultPasskeyName({ aaguid: ZERO, attachment: 'cross-platform', transports: ['hybrid'] })).toBe('Phone or tablet');
    expect(defaultPasskeyName({ aaguid: ZERO })).toBe('Passkey');
  });
});

describe('providerFor', () => {
  it('names a provider it does not know as unknown, never as "Passkey"', () => {
    expect(providerFor(ZERO)).toEqual({ name: 'Unknown passkey provider', kind: 'unknown' });
    expect(providerFor('0bd2e54f-2c4b-4b8f-9c4a-3c1d7f0e9a11')).toEqual({ name: 'Unknown passkey provider', kind: 'unknown' });
    expect(providerFor('FBFC3007-154E-4ECC-8C0B-6E020557D7BD')).toEqual({ name: 'iCloud Keychain', kind: 'platform' });
  });
});

describe('cleanPasskeyName', () => {
  it('collapses white space and treats blank as no name', () => {
    expect(cleanPasskeyName('  Work \n laptop ')).toBe('Work laptop');
    expect(cleanPasskeyName('   ')).toBeUndefined();
    expect(cleanPasskeyName(undefined)).toBeUndefined();
    expect(cleanPasskeyName('x'.repeat(100))).toHaveLength(64);
  });
});
