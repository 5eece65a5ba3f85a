/**
 * allowCredentials for email-first sign-in, built so the answer does not tell
 * who has an account: an unknown address (or an account with no passkey, only
 * an app or a linked account) gets a decoy whose count and transports are
 * drawn, stably, from the same sets a real account's are sent in.
 */
import { createHmac } from 'node:crypto';
import type { AuthenticatorTransportFuture } from '@simplewebauthn/server';
import { normalizeEmail } from '../../db/persisters/users.js';
import type { Authenticator } from '../../db/schema.js';

type Transports = AuthenticatorTransportFuture[];

/**
 * The transport sets real passkeys report (sorted, as `getTransports()` returns them: WebAuthn L3 §5.2.1.1), with
 * how often a decoy uses each (weights in percent). A real passkey whose set is not one of these is sent with no
 * transports, which browsers read as "could be anywhere", so an unusual set neither tells an account exists nor
 * hides the passkey from the browser.
 */
export const TRANSPORT_SETS: readonly { transports: Transports; weight: number }[] = [
  { transports: ['hybrid', 'internal'], weight: 50 }, // synced passkeys: iCloud Keychain, Google Password Manager, 1Password …
  { transports: ['internal'], weight: 14 }, // device-bound platform passkeys (Windows Hello)
  { transports: ['hybrid'], weight: 10 }, // a phone's passkey registered through a QR code
  { transports: ['nfc', 'usb'], weight: 12 }, // security keys with NFC
  { transports: ['usb'], weight: 9 }, // USB-only security keys
  { transports: [], weight: 5 }, // browsers that do not report transports
];

/**
 * How many passkeys a decoy has (weights in percent, for 1, 2 … entries). Accounts with more passkeys than the
 * longest decoy are told apart by their count; few people have that many.
 */
export const DECOY_COUNTS: readonly number[] = [55, 27, 12, 4, 2];

/** A credential id's length in bytes: platform passkeys use 16 to 32, security keys up to 64. */
const DECOY_ID_BYTES = [16, 20, 32, 64] as const;

const sameSet = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((t, i) => t === b[i]);

/** What a stored passkey's transports are sent as: its set sorted when it is one of TRANSPORT_SETS, else none. */
export function publicTransports(stored: string): Transports {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stored);
  } catch {
    return [];
  }
  if (!Array.isArray(parsed)) return [];
  const sorted = [...new Set(parsed.filter((t): t is string => typeof t === 'string'))].sort();
  return TRANSPORT_SETS.find((s) => sameSet(s.transports, sorted))?.transports.slice() ?? [];
}

export function realAllowCredentials(passkeys: Pick<Authenticator, 'credential_id' | 'transports'>[]) {
  return passkeys.map((a) => ({ id: a.credential_id, transports: publicTransports(a.transports) }));
}

/**
 * Stable draws from HMAC-SHA512(secret, label:n), n = 0, 1 …: the same address always gets the same decoy. Bytes are
 * taken from each 64-byte block in turn (a pick takes 4), so a decoy usually costs one HMAC: it runs on every
 * email-first sign-in, real account or not, so that both do the same work.
 */
function stableDraws(secret: string, label: string) {
  let block = 0;
  let pool = Buffer.alloc(0);
  let used = 0;
  const bytes = (size: number) => {
    const out = Buffer.alloc(size);
    for (let filled = 0; filled < size; ) {
      if (used === pool.length) {
        pool = createHmac('sha512', secret).update(`${label}:${block++}`).digest();
        used = 0;
      }
      const taken = pool.copy(out, filled, used, Math.min(pool.length, used + size - filled));
      used += taken;
      filled += taken;
    }
    return out;
  };
  return {
    bytes,
    /** An index into `weights`, drawn in proportion to them. */
    pick(weights: readonly number[]): number {
      const total = weights.reduce((s, w) => s + w, 0);
      let r = (bytes(4).readUInt32BE(0) / 2 ** 32) * total;
      for (let i = 0; i < weights.length; i++) {
        r -= weights[i]!;
        if (r < 0) return i;
      }
      return weights.length - 1;
    },
  };
}

/** allowCredentials for an address with no usable passkeys: shaped like a real account's, the same every time. */
export function decoyAllowCredentials(secret: string, email: string) {
  const draw = stableDraws(secret, `decoy-credentials:${normalizeEmail(email)}`);
  const count = draw.pick(DECOY_COUNTS) + 1;
  const weights = TRANSPORT_SETS.map((s) => s.weight);
  return Array.from({ length: count }, () => {
    const transports = TRANSPORT_SETS[draw.pick(weights)]!.transports.slice();
    const idBytes = DECOY_ID_BYTES[draw.pick(DECOY_ID_BYTES.map(() => 1))]!;
    return { id: draw.bytes(idBytes).toString('base64url'), transports };
  });
}
