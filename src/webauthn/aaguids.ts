/**
 * Names of well-known passkey providers by AAGUID, so people recognise their
 * passkeys in "Login and security settings". Kind drives the icon. Sources:
 * the providers' own documentation and the community passkey AAGUID list.
 */
export type ProviderKind = 'platform' | 'password-manager' | 'security-key' | 'unknown';

export interface Provider {
  name: string;
  kind: ProviderKind;
}

const providers: Record<string, Provider> = {
  'fbfc3007-154e-4ecc-8c0b-6e020557d7bd': { name: 'iCloud Keychain', kind: 'platform' },
  'dd4ec289-e01d-41c9-bb89-70fa845d4bf2': { name: 'iCloud Keychain (Managed)', kind: 'platform' },
  'ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4': { name: 'Google Password Manager', kind: 'password-manager' },
  'adce0002-35bc-c60a-648b-0b25f1f05503': { name: 'Chrome on Mac', kind: 'platform' },
  '08987058-cadc-4b81-b6e1-30de50dcbe96': { name: 'Windows Hello', kind: 'platform' },
  '9ddd1817-af5a-4672-a2b9-3e3dd95000a9': { name: 'Windows Hello', kind: 'platform' },
  '6028b017-b1d4-4c02-b4b3-afcdafc96bb2': { name: 'Windows Hello', kind: 'platform' },
  '53414d53-554e-4700-0000-000000000000': { name: 'Samsung Pass', kind: 'password-manager' },
  'bada5566-a7aa-401f-bd96-45619a55120d': { name: '1Password', kind: 'password-manager' },
  'd548826e-79b4-db40-a3d8-11116f7e8349': { name: 'Bitwarden', kind: 'password-manager' },
  'b84e4048-15dc-4dd0-8640-f4f60813c8af': { name: 'NordPass', kind: 'password-manager' },
  '50726f74-6f6e-5061-7373-50726f746f6e': { name: 'Proton Pass', kind: 'password-manager' },
  '531126d6-e717-415c-9320-3d9aa6981239': { name: 'Dashlane', kind: 'password-manager' },
  'b5397666-4885-aa6b-cebf-e52262a439a2': { name: 'Chromium Browser', kind: 'platform' },
  '771b48fd-d3d4-4f74-9232-fc157ab0507a': { name: 'Edge on Mac', kind: 'platform' },
  'cb69481e-8ff7-4039-93ec-0a2729a154a8': { name: 'YubiKey 5 Series', kind: 'security-key' },
  'ee882879-721c-4913-9775-3dfcce97072a': { name: 'YubiKey 5 Series', kind: 'security-key' },
  'fa2b99dc-9e39-4257-8f92-4a30d23c4118': { name: 'YubiKey 5 Series with NFC', kind: 'security-key' },
  '2fc0579f-8113-47ea-b116-bb5a8db9202a': { name: 'YubiKey 5 Series with NFC', kind: 'security-key' },
  'c5ef55ff-ad9a-4b9f-b580-adebafe026d0': { name: 'YubiKey 5Ci', kind: 'security-key' },
  'a4e9fc6d-4cbe-4758-b8ba-37598bb5bbaa': { name: 'Security Key NFC by Yubico', kind: 'security-key' },
  'e77e3c64-05e3-428b-8824-0cbeb04b829d': { name: 'Security Key NFC by Yubico', kind: 'security-key' },
  '42b4fb4a-2866-43b2-9bf7-6c6669c2e5d3': { name: 'Google Titan Security Key', kind: 'security-key' },
};

/**
 * What an AAGUID not in the list (or all zeros: many providers send none with attestation "none") is called wherever
 * a provider is shown. Said as unknown rather than "Passkey", which reads as if it were the provider's name.
 */
export const UNKNOWN_PROVIDER: Provider = { name: 'Unknown passkey provider', kind: 'unknown' };

/** The provider for an AAGUID; unknown and all-zero AAGUIDs read as {@link UNKNOWN_PROVIDER}. */
export function providerFor(aaguid: string): Provider {
  return providers[aaguid.toLowerCase()] ?? UNKNOWN_PROVIDER;
}
