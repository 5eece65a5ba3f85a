/** A sensible default name for a passkey when the person gives none. */
export function defaultPasskeyName(transports: unknown, placement?: string): string {
  const list = Array.isArray(transports) ? transports : [];
  if (placement === 'security-key' || list.includes('usb') || list.includes('nfc')) return 'Security key';
  if (placement === 'another-device' || list.includes('hybrid')) return 'Phone or tablet';
  return 'Passkey on this device';
}

/** Trim and collapse white space; names are shown back to people, never interpreted. */
export function cleanPasskeyName(name: string | undefined, fallback: string): string {
  const cleaned = (name ?? '').replace(/\s+/g, ' ').trim().slice(0, 64);
  return cleaned || fallback;
}
