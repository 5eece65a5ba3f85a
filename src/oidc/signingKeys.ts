/**
 * The provider's signing keys, kept in the database (private parts sealed with
 * the secret box, so a copy of the database alone cannot mint ID tokens).
 *
 * - One current key per algorithm in SIGNING_ALGS, generated on first start (and
 *   on the first start after an upgrade that added an algorithm): RS256, which
 *   OpenID Connect Core §15.1 makes the algorithm every relying party supports,
 *   and ES256, which services added since sign with (DEFAULT_ID_TOKEN_ALG).
 * - `latchkey keys rotate` adds a new key per algorithm, which signs from then
 *   on; the previous ones stay in the JWKS for LATCHKEY_OIDC_KEY_RETIRE_HOURS so
 *   tokens they signed still verify. Running servers pick up the change when
 *   they restart.
 */
import { generateKeyPair, type JsonWebKey } from 'node:crypto';
import { promisify } from 'node:util';
import { randomToken } from '../crypto.js';
import type { SigningKey } from '../db/schema.js';
import type { Store } from '../db/store.js';
import type { SecretBox } from '../secretBox.js';

const generate = promisify(generateKeyPair);

/** The algorithms ID tokens are signed with; each has one current key. */
export const SIGNING_ALGS = ['ES256', 'RS256'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];
/**
 * The ID-token algorithm of services added from now on. An RSA-2048 signature costs the server about 1 ms of CPU, a
 * P-256 one a few tens of µs (BENCHMARKS.md, token endpoint): RS256 made the signature most of a refresh grant's
 * cost. Services added before keep RS256, which relying parties may have pinned; `--id-token-alg RS256` still
 * chooses it.
 */
export const DEFAULT_ID_TOKEN_ALG: SigningAlg = 'ES256';

function algRank(alg: string): number {
  const i = (SIGNING_ALGS as readonly string[]).indexOf(alg);
  return i < 0 ? SIGNING_ALGS.length : i;
}

export function isSigningAlg(value: string): value is SigningAlg {
  return (SIGNING_ALGS as readonly string[]).includes(value);
}

async function newKey(secretBox: SecretBox, alg: SigningAlg, now: number): Promise<SigningKey> {
  const { privateKey } = alg === 'RS256' ? await generate('rsa', { modulusLength: 2048 }) : await generate('ec', { namedCurve: 'P-256' });
  const kid = randomToken(12);
  const jwk = { ...(privateKey.export({ format: 'jwk' }) as JsonWebKey), kid, alg, use: 'sig' };
  return { kid, alg, private_jwk: secretBox.seal(JSON.stringify(jwk), `signing-key:${kid}`), created_at: now, retires_at: null };
}

/** Make a signing key for each algorithm that has no current one (first start; an upgrade that added ES256). */
export async function ensureSigningKey(store: Store, secretBox: SecretBox, now: number): Promise<boolean> {
  let made = false;
  for (const alg of SIGNING_ALGS) {
    if ((await store.signingKeys.countCurrent(alg)) > 0) continue;
    await store.signingKeys.insert(await newKey(secretBox, alg, now));
    made = true;
  }
  return made;
}

/** Add a key per algorithm that signs from now on; the previous ones stay published for `retireSeconds`. */
export async function rotateSigningKey(store: Store, secretBox: SecretBox, now: number, retireSeconds: number): Promise<{ kids: string[]; retired: number }> {
  const keys = await Promise.all(SIGNING_ALGS.map((alg) => newKey(secretBox, alg, now)));
  const retired = await store.transaction(async (tx) => {
    const n = await tx.signingKeys.retireCurrent(now + retireSeconds * 1000);
    for (const key of keys) await tx.signingKeys.insert(key);
    return n;
  });
  return { kids: keys.map((k) => k.kid), retired };
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
  // oidc-provider signs with the first key that fits: current keys before retired ones, whatever their times say;
  // within each, in SIGNING_ALGS order, so the JWKS and discovery's algorithm list read the same on every instance.
  const byAlg = (a: SigningKey, b: SigningKey) => algRank(a.alg) - algRank(b.alg);
  const keys = [...published.filter((k) => k.retires_at === null).sort(byAlg), ...published.filter((k) => k.retires_at !== null).sort(byAlg)];
  return keys.map((k) => JSON.parse(secretBox.open(k.private_jwk, `signing-key:${k.kid}`)) as JsonWebKey);
}
