/**
 * Authenticator apps (TOTP, RFC 6238) through `otpauth`: 30-second steps, 6
 * digits, SHA-1 (what Microsoft and Google Authenticator support). A code is
 * accepted one step either side of now, and each step at most once: the
 * authenticator row's counter keeps the last step used.
 */
import { Secret, TOTP } from 'otpauth';

export const TOTP_PERIOD = 30;

export function newTotpSecret(): string {
  return new Secret({ size: 20 }).base32;
}

function totp(secret: string, issuer: string, label: string): TOTP {
  return new TOTP({ issuer, label, algorithm: 'SHA1', digits: 6, period: TOTP_PERIOD, secret: Secret.fromBase32(secret) });
}

/** The otpauth:// URI an app scans, with the organisation as issuer. */
export function totpUri(secret: string, issuer: string, label: string): string {
  return totp(secret, issuer, label).toString();
}

/** The secret grouped in fours, for typing into an app by hand. */
export function formatSecret(secret: string): string {
  return secret.match(/.{1,4}/g)!.join(' ');
}

/**
 * The time step a code belongs to when it is valid now (±1 step) and newer
 * than `lastStep`; undefined otherwise.
 */
export function checkTotp(secret: string, code: string, now: number, lastStep: number): number | undefined {
  const token = code.replace(/\s+/g, '');
  if (!/^\d{6}$/.test(token)) return undefined;
  const delta = totp(secret, '', '').validate({ token, timestamp: now, window: 1 });
  if (delta === null) return undefined;
  const step = Math.floor(now / 1000 / TOTP_PERIOD) + delta;
  return step > lastStep ? step : undefined;
}
