/**
 * Enrol many users, one ES256 passkey each, straight through Kysely in one
 * transaction. The private keys stay here, in one software authenticator per
 * user (test/support/softAuthenticator.ts), so the load generator signs like a
 * real authenticator would.
 *
 * Keys are exported as SPKI DER, never JWK: on Node 20 JWK export of EC keys in
 * a loop can deadlock in the garbage collector (CONVENTIONS.md, known pitfalls).
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { Db } from '../src/db/connect.js';
import type { NewAuthenticator, NewUser } from '../src/db/schema.js';
import { randomToken } from '../src/crypto.js';
import { userHandleFor } from '../src/webauthn/ceremonies.js';
import { encodeCbor } from '../test/support/cbor.js';
import { SoftAuthenticator } from '../test/support/softAuthenticator.js';

export interface BenchUser {
  id: string;
  email: string;
  credentialId: string;
  authenticator: SoftAuthenticator;
}

/** COSE_Key (RFC 9053) for a P-256 public key: the uncompressed point ends the SPKI DER. */
function es256CoseKey(spki: Buffer): Buffer {
  const point = spki.subarray(spki.length - 65);
  return encodeCbor(new Map<number, number | Uint8Array>([[1, 2], [3, -7], [-1, 1], [-2, point.subarray(1, 33)], [-3, point.subarray(33, 65)]]));
}

/** Make `count` users with their authenticators (no database yet). */
export function makeUsers(count: number, origin: string, rpId: string): { users: BenchUser[]; rows: { user: NewUser; authenticator: NewAuthenticator }[] } {
  const users: BenchUser[] = [];
  const rows: { user: NewUser; authenticator: NewAuthenticator }[] = [];
  const now = Date.now();
  for (let i = 0; i < count; i++) {
    const id = randomToken(16);
    const email = `user${i}@bench.example`;
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const spki = publicKey.export({ format: 'der', type: 'spki' });
    const credentialId = randomBytes(32).toString('base64url');
    const authenticator = new SoftAuthenticator({ origin, alg: -7, counter: 'increment' });
    authenticator.credentials.set(credentialId, {
      id: credentialId,
      privateKey,
      alg: -7,
      userHandle: Buffer.from(userHandleFor(id)).toString('base64url'),
      rpId,
      counter: 0,
    });
    users.push({ id, email, credentialId, authenticator });
    rows.push({
      user: { id, email, email_normalized: email, display_name: `Bench User ${i}`, status: 'enrolled', created_at: now, updated_at: now },
      authenticator: {
        id: randomToken(12),
        user_id: id,
        type: 'passkey',
        credential_id: credentialId,
        public_key: es256CoseKey(spki).toString('base64url'),
        counter: 0,
        transports: JSON.stringify(['internal', 'hybrid']),
        aaguid: '00000000-0000-0000-0000-000000000000',
        backup_eligible: 0,
        backed_up: 0,
        attestation_format: 'none',
        name: 'Bench passkey',
        created_at: now,
        last_used_at: null,
      },
    });
  }
  return { users, rows };
}

/** Insert the users and their passkeys in one transaction, in chunks that stay under both databases' parameter limits. */
export async function insertUsers(db: Db, rows: { user: NewUser; authenticator: NewAuthenticator }[]): Promise<void> {
  const chunk = 1000;
  await db.kysely.transaction().execute(async (trx) => {
    for (let i = 0; i < rows.length; i += chunk) {
      const part = rows.slice(i, i + chunk);
      await trx.insertInto('users').values(part.map((r) => r.user)).execute();
      await trx.insertInto('authenticators').values(part.map((r) => r.authenticator)).execute();
    }
  });
}
