import { providerFor } from './aaguids.js';

/**
 * A name people will recognise for a passkey they did not name: the provider
 * when its AAGUID is known ("iCloud Keychain", "YubiKey 5 Series"), otherwise
 * what the browser says about where it lives, and at the last "Passkey". A name
 * is what the person calls the thing, shown beside its provider: "Unknown passkey
 * provider" belongs in the provider column, and as a name it would say it twice
 * and read like a warning about the passkey itself.
 */
export function defaultPasskeyName(facts: { aaguid: string; attachment?: unknown; transports?: unknown }): string {
  const provider = providerFor(facts.aaguid);
  if (provider.kind !== 'unknown') return provider.name;
  const transports = Array.isArray(facts.transports) ? facts.transports : [];
  if (facts.attachment === 'platform' || transports.includes('internal')) return 'Passkey on this device';
  if (transports.includes('usb') || transports.includes('nfc') || transports.includes('ble')) return 'Security key';
  if (transports.includes('hybrid')) return 'Phone or tablet';
  return 'Passkey';
}

/** Trim and collapse white space; names are shown back to people, never interpreted. Empty means "no name given". */
export function cleanPasskeyName(name: string | undefined): string | undefined {
  const cleaned = (name ?? '').replace(/\s+/g, ' ').trim().slice(0, 64);
  return cleaned || undefined;
}
