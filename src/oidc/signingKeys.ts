/**
 * The provider's signing keys, kept in the database (private parts sealed with
 * the secret box, so a copy of the database alone cannot mint ID tokens).
 *
 * - On first start, a key is generated (RS256: OpenID Connect Core §15.1 makes
 *   it the algorithm every relying party supports).
 * - `latchkey keys rotate` adds a new key, which signs from then on; the
 *   previous ones stay in the JWKS for LATCHKEY_OIDC_KEY_RETIRE_HOURS so tokens
 *   they signed still verify. Running servers pick up the change when they
 *   restart.
 */
import { generateKeyPair, type JsonWebKey } from 'node:crypto';
import { promisify } from 'node:util';
import { randomToken } from '../crypto.js';
import type { SigningKey } from '../db/schema.js';
import type { Store } from '../db/store.js';
import type { SecretBox } from '../secretBox.js';

const generate = promisify(generateKeyPair);
export const SIGNING_ALG = 'RS256';

async function newKey(secretBox: SecretBox, now: number): Promise<SigningKey> {
  const { privateKey } = await generate('rsa', { modulusLength: 2048 });
  const kid = randomToken(12);
  const jwk = { ...(privateKey.export({ format: 'jwk' }) as JsonWebKey), kid, alg: SIGNING_ALG, use: 'sig' };
  return { kid, alg: SIGNING_ALG, private_jwk: secretBox.seal(JSON.stringify(jwk), `signing-key:${kid}`), created_at: now, retires_at: null };
}

/** Make a signing key when none is current (first start). */
export async function ensureSigningKey(store: Store, secretBox: SecretBox, now: number): Promise<boolean> {
  if ((await store.signingKeys.countCurrent()) > 0) return false;
  await store.signingKeys.insert(await newKey(secretBox, now));
  return true;
}

/** Add a key that signs from now on; the previous ones stay published for `retireSeconds`. */
export async function rotateSigningKey(store: Store, secretBox: SecretBox, now: number, retireSeconds: number): Promise<{ kid: string; retired: number }> {
  const key = await newKey(secretBox, now);
  const retired = await store.transaction(async (tx) => {
    const n = await tx.signingKeys.retireCurrent(now + retireSeconds * 1000);
    await tx.signingKeys.insert(key);
    return n;
  });
  return { kid: key.kid, retired };
}

/**
 * At start: the secret key opens the signing keys stored in the database (every instance has them), or start-up
 * stops with a ConfigError naming LATCHKEY_SECRET_KEY or _FILE. Run after {@link ensureSigningKey}.
 */
export async function checkSecretKeyOpensSigningKeys(store: Store, secretBox: SecretBox, now: number): Promise<void> {
  for (const k of await store.signingKeys.listPublished(now)) secretBox.checkKeyOpens(k.private_jwk, `signing-key:${k.kid}`);
}

/** The private JWKs oidc-provider signs with and publishes (public parts only), newest first. */
export async function loadSigningJwks(store: Store, secretBox: SecretBox, now: number): Promise<JsonWebKey[]> {
  const published = await store.signingKeys.listPublished(now);
  // oidc-provider signs with the first key that fits: current keys before retired ones, whatever their times say.
  const keys = [...published.filter((k) => k.retires_at === null), ...published.filter((k) => k.retires_at !== null)];
  return keys.map((k) => JSON.parse(secretBox.open(k.private_jwk, `signing-key:${k.kid}`)) as JsonWebKey);
}
