/**
 * Enrol many users, one ES256 passkey each, straight through Kysely. The
 * private keys stay here, in one software authenticator per user
 * (test/support/softAuthenticator.ts), so the load generator signs like a
 * real authenticator would. Only the users the load drives need one
 * (`makeUsers`); `insertUsers(db, rows, { total })` adds filler users up to
 * `total` (a million takes about a minute on SQLite).
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
    rows.push(benchRow(i, id, randomToken(12), credentialId, es256CoseKey(spki).toString('base64url'), now));
  }
  return { users, rows };
}

/** Bench user number `i` (user<i>@bench.example) and its one enrolled passkey, as seeded rows. */
function benchRow(i: number, id: string, authenticatorId: string, credentialId: string, publicKey: string, now: number): { user: NewUser; authenticator: NewAuthenticator } {
  const email = `user${i}@bench.example`;
  return {
    user: { id, email, email_normalized: email, display_name: `Bench User ${i}`, status: 'enrolled', created_at: now, updated_at: now },
    authenticator: {
      id: authenticatorId,
      user_id: id,
      type: 'passkey',
      credential_id: credentialId,
      public_key: publicKey,
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
  };
}

export interface InsertOptions {
  /**
   * Users in all (default: `rows.length`). Those past the rows given are filler: real accounts with a unique email
   * and credential id each, whose passkeys share a few public keys ({@link FILLER_KEYS}) since no one signs in
   * with them, which is what makes seeding a million practical (key generation is most of the cost).
   */
  total?: number;
  /** Called after each transaction with the users inserted so far. */
  onProgress?: (done: number, total: number) => void;
}

/** Rows per INSERT: 1,000 × 14 columns stays under SQLite's 32,766 and PostgreSQL's 65,535 parameters. */
const CHUNK = 1000;
/** Rows per transaction: a few transactions for a million, so SQLite's WAL does not have to hold them all at once. */
const TRANSACTION = 100_000;
/** Distinct public keys the filler users' passkeys share. */
export const FILLER_KEYS = 16;

/**
 * Insert the users and their passkeys in chunks that stay under both databases' parameter limits, in one
 * transaction per {@link TRANSACTION} users; with `total` above `rows.length`, filler users after them (emails
 * user<i>@bench.example continue from the rows').
 */
export async function insertUsers(db: Db, rows: { user: NewUser; authenticator: NewAuthenticator }[], options: InsertOptions = {}): Promise<void> {
  const total = Math.max(rows.length, options.total ?? rows.length);
  const filler = total > rows.length ? fillerRows() : undefined;
  for (let start = 0; start < total; start += TRANSACTION) {
    const end = Math.min(total, start + TRANSACTION);
    await db.kysely.transaction().execute(async (trx) => {
      for (let i = start; i < end; i += CHUNK) {
        const to = Math.min(end, i + CHUNK);
        const part = i >= rows.length ? filler!(i, to) : rows.slice(i, Math.min(to, rows.length)).concat(to > rows.length ? filler!(rows.length, to) : []);
        await trx.insertInto('users').values(part.map((r) => r.user)).execute();
        await trx.insertInto('authenticators').values(part.map((r) => r.authenticator)).execute();
      }
    });
    options.onProgress?.(end, total);
  }
}

/** Rows for users `from` … `to - 1` with no private key anywhere: their passkeys use one of FILLER_KEYS public keys. */
function fillerRows(): (from: number, to: number) => { user: NewUser; authenticator: NewAuthenticator }[] {
  const keys = Array.from({ length: FILLER_KEYS }, () =>
    es256CoseKey(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' })).toString('base64url'),
  );
  const now = Date.now();
  return (from, to) => {
    const rows: { user: NewUser; authenticator: NewAuthenticator }[] = [];
    const random = randomBytes((to - from) * 60);
    for (let i = from; i < to; i++) {
      const r = (i - from) * 60;
      const id = random.toString('base64url', r, r + 16);
      rows.push(benchRow(i, id, random.toString('base64url', r + 16, r + 28), random.toString('base64url', r + 28, r + 60), keys[i % FILLER_KEYS]!, now));
    }
    return rows;
  };
}
