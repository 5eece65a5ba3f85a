/**
 * The persister contract: one suite, run unchanged on SQLite (a WAL file) and
 * on PostgreSQL (a schema of its own, a pool of several connections so
 * concurrent calls really race). What passes here may be relied on by every
 * flow, whichever database is configured.
 */
import { randomBytes } from 'node:crypto';
import { CompiledQuery, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from '../../test/support/databases.js';
import type { Db } from './connect.js';
import { isUniqueViolation } from './isUniqueViolation.js';
import type { NewFlow } from './persisters/flows.js';
import { isCounterDidNotMove } from './persisters/authenticators.js';
import type { NewAuthenticator, Session, User } from './schema.js';
import { createStore, type Store } from './store.js';
import { migrateToLatest } from './migrations.js';

const databases = await testDatabases();

/** A time past 2^32 ms, so bigint columns are really exercised. */
const T0 = 1_750_000_000_000;
const MIGRATIONS = ['0001_core', '0002_registration_authority', '0003_self_service', '0004_oidc', '0005_hot_path_indexes', '0006_signin_failures', '0007_authenticator_config', '0008_fido_metadata', '0009_passkey_prompt', '0010_api_tokens', '0011_webhooks', '0012_user_imports', '0013_scim', '0014_service_id_token_alg', '0015_challenges'];
const MINUTE = 60_000;

const rid = (bytes = 8) => randomBytes(bytes).toString('base64url');

function newUser(overrides: Partial<User> = {}): User {
  const id = rid();
  const email = overrides.email ?? `user-${id}@Example.org`;
  return {
    id,
    email,
    email_normalized: email.trim().toLowerCase(),
    display_name: 'Ada Lovelace',
    status: 'pending',
    created_at: T0,
    updated_at: T0,
    national_id_hash: null,
    password_hash: null,
    failed_signins: 0,
    last_failed_signin_at: null,
    passkey_prompt_skipped_at: null,
    scim_external_id: null,
    ...overrides,
    name_search: (overrides.display_name ?? 'Ada Lovelace').toLowerCase(),
  };
}

function newAuthenticator(userId: string, overrides: Partial<NewAuthenticator> = {}): NewAuthenticator {
  return {
    id: rid(),
    user_id: userId,
    type: 'passkey',
    credential_id: rid(32),
    public_key: rid(77),
    counter: 0,
    transports: JSON.stringify(['internal', 'hybrid']),
    aaguid: 'fbfc3007-154e-4ecc-8c0b-6e020557d7bd',
    backup_eligible: 1,
    backed_up: 0,
    attestation_format: 'none',
    config: '{}',
    name: 'iCloud Keychain',
    created_at: T0,
    last_used_at: null,
    issued_by: null,
    ...overrides,
  };
}

function newSession(userId: string, overrides: Partial<Session> = {}): Session {
  return {
    id_hash: rid(32),
    public_id: rid(),
    user_id: userId,
    created_at: T0,
    last_seen_at: T0,
    authenticated_at: T0,
    expires_at: T0 + 60 * MINUTE,
    aal: 1,
    ip: '192.0.2.7',
    user_agent: 'Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0',
    authenticator_id: null,
    ...overrides,
  };
}

function newFlow(overrides: Partial<NewFlow> = {}): NewFlow {
  return {
    id: rid(),
    type: 'webauthn.authentication',
    binding_hash: rid(32),
    user_id: null,
    lookup: rid(32),
    data: JSON.stringify({ placement: 'any' }),
    created_at: T0,
    expires_at: T0 + 5 * MINUTE,
    ...overrides,
  };
}

/** A user row as a database migrated only up to 0008 holds it (no passkey_prompt_skipped_at column yet). */
async function insertUserBefore0009(db: Db): Promise<Omit<User, 'passkey_prompt_skipped_at' | 'scim_external_id'>> {
  const { passkey_prompt_skipped_at: _added, scim_external_id: _scim, ...row } = newUser();
  await db.kysely.insertInto('users').values(row).execute();
  return row;
}

/** Resolves to the rejection, failing the test if the promise fulfils. */
async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe.each(databases)('persister contract on $name', (target) => {
  describe.skipIf(target.skipReason !== undefined)(target.skipReason ?? 'contract', () => {
    let db: Db;
    let store: Store;

    /** A database of its own, for tests that count rows across a table. */
    async function freshStore(): Promise<Store> {
      const fresh = await target.open();
      await fresh.migrate();
      return createStore(fresh);
    }

    async function insertUser(overrides: Partial<User> = {}): Promise<User> {
      return store.users.insert(newUser(overrides));
    }

    beforeAll(async () => {
      // Several connections on PostgreSQL, so concurrent calls below are real races.
      db = await target.open({ poolSize: 10 });
      await db.migrate();
      store = createStore(db);
    });
    afterAll(() => target.cleanup());

    describe('migrations', () => {
      it('apply once, and a second run applies nothing', async () => {
        const fresh = await target.open();
        expect(await fresh.migrate()).toEqual(MIGRATIONS);
        expect(await fresh.migrate()).toEqual([]);
        for (const table of ['users', 'authenticators', 'sessions', 'flows', 'challenges', 'audit_events', 'settings', 'roles', 'email_templates', 'rate_counters', 'signin_failures'] as const) {
          expect(await fresh.kysely.selectFrom(table).selectAll().execute()).toEqual([]);
        }
      });

      it('two concurrent runs apply each migration exactly once', async () => {
        const fresh = await target.open();
        const [a, b] = await Promise.all([fresh.migrate(), fresh.migrate()]);
        expect([...a, ...b]).toEqual(MIGRATIONS);
      });

      it.runIf(target.name === 'postgres')('keep their bookkeeping in their own schema, beside other migrated schemas', async () => {
        // The suite's database is already migrated in another schema of the same database.
        const fresh = await target.open();
        expect(await fresh.migrate()).toEqual(MIGRATIONS);
        const { rows } = await sql<{ n: number }>`
          select count(*) as n from information_schema.tables
          where table_schema = current_schema() and table_name in ('kysely_migration', 'kysely_migration_lock', 'users')`.execute(fresh.kysely);
        expect(rows[0]!.n).toBe(3);
      });

      it.runIf(target.name === 'postgres')('read only their own schema, so another being dropped meanwhile does not stop them', async () => {
        // Kysely's own introspector read every schema's tables and failed with `schema "…" does not exist` when
        // another was dropped during the read: about one migration in two with this churn.
        const churn = await target.open();
        let churning = true;
        const churned = (async () => {
          for (let n = 0; churning; n++) {
            const other = `${(await sql<{ s: string }>`select current_schema() as s`.execute(churn.kysely)).rows[0]!.s}_other_${n}`;
            await sql.raw(`create schema ${other}; create table ${other}.t (id serial primary key, a text, b text)`).execute(churn.kysely);
            await sql.raw(`drop schema ${other} cascade`).execute(churn.kysely);
          }
        })();
        try {
          for (let i = 0; i < 6; i++) {
            const fresh = await target.open();
            expect(await fresh.migrate()).toEqual(MIGRATIONS);
            const [schema, tables] = [(await sql<{ s: string }>`select current_schema() as s`.execute(fresh.kysely)).rows[0]!.s, await fresh.kysely.introspection.getTables()];
            expect(new Set(tables.map((t) => t.schema))).toEqual(new Set([schema]));
            expect(tables.map((t) => t.name)).toContain('users');
            expect(tables.map((t) => t.name)).not.toContain('kysely_migration');
          }
        } finally {
          churning = false;
          await churned;
        }
      });

      it('0005 keeps the sessions and audit records of a database made before it', async () => {
        const fresh = await target.open();
        expect(await migrateToLatest(fresh.kysely, fresh.dialect, '0004_oidc')).toEqual(MIGRATIONS.slice(0, 4));
        const s = createStore(fresh);
        const user = await insertUserBefore0009(fresh);
        const session = newSession(user.id, { authenticator_id: rid() });
        await s.sessions.insert(session);
        // Written as a server of then wrote it: today's persister also writes actor_token_id (0010).
        await sql`insert into audit_events (at, event, outcome, actor_user_id, subject_user_id, detail) values (${T0}, 'signin', 'success', ${user.id}, ${user.id}, '{}')`.execute(fresh.kysely);
        expect(await fresh.migrate()).toEqual(MIGRATIONS.slice(4));
        expect(await s.sessions.findByHash(session.id_hash)).toEqual(session);
        expect((await s.audit.search({ actorUserId: user.id }, 10)).map((e) => e.event)).toEqual(['signin']);
        // Deleting the user still cascades to the copied sessions table.
        await fresh.kysely.deleteFrom('users').where('id', '=', user.id).execute();
        expect(await s.sessions.findByHash(session.id_hash)).toBeUndefined();
      });

      it('0007 moves an app\'s secret and step and a linked account\'s provider out of the passkey columns into config', async () => {
        const fresh = await target.open();
        await migrateToLatest(fresh.kysely, fresh.dialect, '0006_signin_failures');
        const s = createStore(fresh);
        const user = await insertUserBefore0009(fresh);
        const { config: _none, ...before } = newAuthenticator(user.id);
        const passkey = { ...before, id: rid() };
        const app = { ...before, id: rid(), type: 'totp', credential_id: `totp:${rid()}`, public_key: 'sealed-secret', counter: 59_000_123, aaguid: 'totp', backup_eligible: 0 };
        const linked = { ...before, id: rid(), type: 'linked-account', credential_id: 'https://idp.example#frank', public_key: '', aaguid: 'nhsnet', backup_eligible: 0 };
        await fresh.kysely.insertInto('authenticators').values([passkey, app, linked]).execute();
        expect(await fresh.migrate()).toEqual(MIGRATIONS.slice(6));
        const byId = async (id: string) => (await s.authenticators.findForUser(user.id, id))!;
        expect(await byId(passkey.id)).toEqual({ ...passkey, config: '{}' });
        expect(await byId(app.id)).toMatchObject({ public_key: '', counter: 0, aaguid: '' });
        expect(JSON.parse((await byId(app.id)).config)).toEqual({ sealedSecret: 'sealed-secret', lastStep: 59_000_123 });
        expect(await byId(linked.id)).toMatchObject({ aaguid: '', credential_id: 'https://idp.example#frank' });
        expect(JSON.parse((await byId(linked.id)).config)).toEqual({ provider: 'nhsnet' });
      });

      it.runIf(target.name === 'sqlite')('run SQLite in WAL mode with foreign keys enforced', async () => {
        const { rows: journal } = await sql<{ journal_mode: string }>`pragma journal_mode`.execute(db.kysely);
        expect(journal[0]!.journal_mode).toBe('wal');
        const { rows: fk } = await sql<{ foreign_keys: number }>`pragma foreign_keys`.execute(db.kysely);
        expect(fk[0]!.foreign_keys).toBe(1);
      });
    });

    describe('users', () => {
      it('insert and find by id return every field with its type', async () => {
        const user = newUser({ display_name: 'Grace Hopper' });
        expect(await store.users.insert(user)).toEqual(user);
        const found = await store.users.findById(user.id);
        expect(found).toEqual(user);
        expect(typeof found!.created_at).toBe('number');
        expect(await store.users.findById(rid())).toBeUndefined();
      });

      it('find by email ignores case and surrounding space', async () => {
        const user = await insertUser({ email: `Mixed.Case-${rid()}@Example.ORG` });
        expect((await store.users.findByEmail(user.email.toUpperCase()))?.id).toBe(user.id);
        expect((await store.users.findByEmail(`  ${user.email.toLowerCase()} `))?.id).toBe(user.id);
        expect(await store.users.findByEmail(`other-${rid()}@example.org`)).toBeUndefined();
      });

      it('the database rejects a second user whose email differs only in case', async () => {
        const email = `Dup-${rid()}@Example.org`;
        const first = await insertUser({ email });
        const error = await rejectionOf(store.users.insert(newUser({ email: email.toUpperCase() })));
        expect(isUniqueViolation(error)).toBe(true);
        // Even a caller that passes a wrong normalized form cannot get around the index.
        const sneaky = newUser({ email: email.toLowerCase(), email_normalized: `not-${rid()}` });
        expect(isUniqueViolation(await rejectionOf(store.users.insert(sneaky)))).toBe(true);
        expect(await store.users.findById(sneaky.id)).toBeUndefined();
        expect((await store.users.findByEmail(email))?.id).toBe(first.id);
      });

      it('a user is pending until enrolled, and the change moves updated_at', async () => {
        const user = await insertUser();
        expect((await store.users.findById(user.id))!.status).toBe('pending');
        await store.users.setStatus(user.id, 'enrolled', T0 + MINUTE);
        expect(await store.users.findById(user.id)).toMatchObject({ status: 'enrolled', updated_at: T0 + MINUTE, created_at: T0 });
        await store.users.setStatus(user.id, 'suspended', T0 + 2 * MINUTE);
        expect((await store.users.findById(user.id))!.status).toBe('suspended');
      });

      it('remembers when the passkey prompt was skipped, and forgets it; the joined reads carry it', async () => {
        const user = await insertUser();
        expect((await store.users.findById(user.id))!.passkey_prompt_skipped_at).toBeNull();
        await store.users.setPasskeyPromptSkippedAt(user.id, T0 + 3 * MINUTE);
        const skipped = (await store.users.findById(user.id))!;
        // Not a change to the profile: updated_at stays.
        expect(skipped).toMatchObject({ passkey_prompt_skipped_at: T0 + 3 * MINUTE, updated_at: T0 });
        expect(typeof skipped.passkey_prompt_skipped_at).toBe('number');
        const session = newSession(user.id);
        await store.sessions.insert(session);
        expect((await store.sessions.findWithUser(session.id_hash))!.user).toEqual(skipped);
        await store.users.setPasskeyPromptSkippedAt(user.id, null);
        expect((await store.users.findById(user.id))!.passkey_prompt_skipped_at).toBeNull();
        // Only that person's row.
        const other = await insertUser();
        await store.users.setPasskeyPromptSkippedAt(user.id, T0);
        expect((await store.users.findById(other.id))!.passkey_prompt_skipped_at).toBeNull();
      });

      it('0009 adds the skip time to existing users as null', async () => {
        const fresh = await target.open();
        await migrateToLatest(fresh.kysely, fresh.dialect, '0008_fido_metadata');
        const before = await insertUserBefore0009(fresh);
        expect(await fresh.migrate()).toEqual(MIGRATIONS.slice(8));
        expect(await createStore(fresh).users.findById(before.id)).toEqual({ ...before, passkey_prompt_skipped_at: null, scim_external_id: null });
      });

      it('count and list see inserted users in creation order', async () => {
        const s = await freshStore();
        const a = await s.users.insert(newUser({ created_at: T0 + 2 }));
        const b = await s.users.insert(newUser({ created_at: T0 + 1 }));
        expect(await s.users.count()).toBe(2);
        expect((await s.users.list()).map((u) => u.id)).toEqual([b.id, a.id]);
        expect(await s.users.list(1)).toHaveLength(1);
      });
    });

    describe('authenticators', () => {
      it('insert and find by credential id return every field, flags as 0/1 and times as numbers', async () => {
        const user = await insertUser();
        const passkey = newAuthenticator(user.id, { counter: 2 ** 32 - 1, backup_eligible: 1, backed_up: 1, last_used_at: T0 + 5 });
        await store.authenticators.insert(passkey);
        const found = await store.authenticators.findByCredentialId(passkey.credential_id);
        expect(found).toEqual(passkey);
        expect(found!.backup_eligible).toBe(1);
        expect(found!.backed_up).toBe(1);
        expect(typeof found!.counter).toBe('number');
        expect(typeof found!.created_at).toBe('number');
        expect(typeof found!.last_used_at).toBe('number');
        expect(JSON.parse(found!.transports)).toEqual(['internal', 'hybrid']);
        expect(await store.authenticators.findByCredentialId(rid(32))).toBeUndefined();
      });

      it('list and find are scoped to their user', async () => {
        const ada = await insertUser();
        const bob = await insertUser();
        const second = newAuthenticator(ada.id, { created_at: T0 + 2, backup_eligible: 0 });
        const first = newAuthenticator(ada.id, { created_at: T0 + 1 });
        const bobs = newAuthenticator(bob.id);
        for (const a of [second, first, bobs]) await store.authenticators.insert(a);
        expect((await store.authenticators.listForUser(ada.id)).map((a) => a.id)).toEqual([first.id, second.id]);
        expect((await store.authenticators.listForUser(ada.id))[1]!.backup_eligible).toBe(0);
        expect((await store.authenticators.findForUser(ada.id, first.id))?.id).toBe(first.id);
        expect(await store.authenticators.findForUser(bob.id, first.id)).toBeUndefined();
        expect(await store.authenticators.listForUser(rid())).toEqual([]);
      });

      it('a credential id is unique across all users', async () => {
        const ada = await insertUser();
        const bob = await insertUser();
        const passkey = newAuthenticator(ada.id);
        await store.authenticators.insert(passkey);
        const error = await rejectionOf(store.authenticators.insert(newAuthenticator(bob.id, { credential_id: passkey.credential_id })));
        expect(isUniqueViolation(error)).toBe(true);
        expect(await store.authenticators.listForUser(bob.id)).toEqual([]);
      });

      it('an authenticator needs an existing user', async () => {
        const error = await rejectionOf(store.authenticators.insert(newAuthenticator(rid())));
        expect(isUniqueViolation(error)).toBe(false);
      });

      it('rename and remove act only for the owner', async () => {
        const ada = await insertUser();
        const mallory = await insertUser();
        const passkey = newAuthenticator(ada.id, { name: 'Phone' });
        await store.authenticators.insert(passkey);

        expect(await store.authenticators.rename(mallory.id, passkey.id, 'Mine now')).toBe(false);
        expect(await store.authenticators.rename(ada.id, rid(), 'Nothing')).toBe(false);
        expect((await store.authenticators.findForUser(ada.id, passkey.id))!.name).toBe('Phone');
        expect(await store.authenticators.rename(ada.id, passkey.id, 'Work laptop')).toBe(true);
        expect((await store.authenticators.findForUser(ada.id, passkey.id))!.name).toBe('Work laptop');

        expect(await store.authenticators.remove(mallory.id, passkey.id)).toBe(false);
        expect(await store.authenticators.findByCredentialId(passkey.credential_id)).toBeDefined();
        expect(await store.authenticators.remove(ada.id, passkey.id)).toBe(true);
        expect(await store.authenticators.findByCredentialId(passkey.credential_id)).toBeUndefined();
        expect(await store.authenticators.remove(ada.id, passkey.id)).toBe(false);
      });

      it('countForUser counts one type for one user', async () => {
        const ada = await insertUser();
        const bob = await insertUser();
        await store.authenticators.insert(newAuthenticator(ada.id));
        await store.authenticators.insert(newAuthenticator(ada.id));
        await store.authenticators.insert(newAuthenticator(ada.id, { type: 'totp' }));
        await store.authenticators.insert(newAuthenticator(bob.id));
        expect(await store.authenticators.countForUser(ada.id)).toBe(2);
        expect(await store.authenticators.countForUser(ada.id, 'totp')).toBe(1);
        expect(await store.authenticators.countForUser(rid())).toBe(0);
      });

      it('listOfModelWithUser finds every authenticator of one AAGUID, with its owner, oldest first', async () => {
        const aaguid = randomBytes(16).toString('hex').replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
        const ada = await insertUser({ display_name: 'Ada Lovelace' });
        const bob = await insertUser({ display_name: 'Bob Other' });
        const adas = newAuthenticator(ada.id, { aaguid, created_at: T0 + 2 });
        const bobs = newAuthenticator(bob.id, { aaguid, created_at: T0 + 1 });
        await store.authenticators.insert(adas);
        await store.authenticators.insert(bobs);
        await store.authenticators.insert(newAuthenticator(ada.id));
        const found = await store.authenticators.listOfModelWithUser(aaguid.toUpperCase());
        expect(found.map((f) => [f.authenticator.id, f.user.id])).toEqual([[bobs.id, bob.id], [adas.id, ada.id]]);
        expect(found[1]!.authenticator).toEqual(adas);
        expect(found[1]!.user).toMatchObject({ email: ada.email, display_name: 'Ada Lovelace' });
        expect(await store.authenticators.listOfModelWithUser('00000000-0000-0000-0000-0000000000ff')).toEqual([]);
      });

      it('swapConfig replaces a kind\'s configuration only if it is unchanged: of ten concurrent swaps exactly one succeeds', async () => {
        const user = await insertUser();
        const app = newAuthenticator(user.id, { type: 'totp', config: '{"sealedSecret":"s","lastStep":1}' });
        await store.authenticators.insert(app);
        const results = await Promise.all(Array.from({ length: 10 }, (_, i) => store.authenticators.swapConfig(app.id, app.config!, `{"sealedSecret":"s","lastStep":${i + 2}}`, T0 + i)));
        expect(results.filter(Boolean)).toHaveLength(1);
        const won = results.indexOf(true);
        expect(await store.authenticators.findForUser(user.id, app.id)).toMatchObject({ config: `{"sealedSecret":"s","lastStep":${won + 2}}`, last_used_at: T0 + won });
        expect(await store.authenticators.swapConfig(app.id, app.config!, '{}')).toBe(false);
      });

      describe('recordUse', () => {
        async function passkeyWithCounter(counter: number) {
          const user = await insertUser();
          const passkey = newAuthenticator(user.id, { counter, backed_up: 0 });
          await store.authenticators.insert(passkey);
          const read = async () => (await store.authenticators.findForUser(user.id, passkey.id))!;
          return { passkey, read };
        }

        it('a higher counter is recorded with the backup state and the time', async () => {
          const { passkey, read } = await passkeyWithCounter(5);
          expect(await store.authenticators.recordUse(passkey.id, { counter: 6, backedUp: true, backupEligible: true, at: T0 + MINUTE })).toBe(true);
          expect(await read()).toMatchObject({ counter: 6, backed_up: 1, last_used_at: T0 + MINUTE });
          expect(await store.authenticators.recordUse(passkey.id, { counter: 2 ** 32 - 1, backedUp: false, backupEligible: false, at: T0 + 2 * MINUTE })).toBe(true);
          expect(await read()).toMatchObject({ counter: 2 ** 32 - 1, backed_up: 0, last_used_at: T0 + 2 * MINUTE });
        });

        it.each([
          ['an equal counter', 5, 5],
          ['a lower counter', 5, 4],
          ['a zero counter after a non-zero one', 5, 0],
        ])('%s returns false and leaves the row unchanged', async (_label, stored, presented) => {
          const { passkey, read } = await passkeyWithCounter(stored);
          const before = await read();
          expect(await store.authenticators.recordUse(passkey.id, { counter: presented, backedUp: true, backupEligible: true, at: T0 + MINUTE })).toBe(false);
          expect(await read()).toEqual(before);
        });

        it('both counters zero (an authenticator without one) is accepted every time', async () => {
          const { passkey, read } = await passkeyWithCounter(0);
          expect(await store.authenticators.recordUse(passkey.id, { counter: 0, backedUp: true, backupEligible: true, at: T0 + MINUTE })).toBe(true);
          expect(await store.authenticators.recordUse(passkey.id, { counter: 0, backedUp: true, backupEligible: true, at: T0 + 2 * MINUTE })).toBe(true);
          expect(await read()).toMatchObject({ counter: 0, backed_up: 1, last_used_at: T0 + 2 * MINUTE });
          // Once it starts counting it may not go back to zero.
          expect(await store.authenticators.recordUse(passkey.id, { counter: 1, backedUp: true, backupEligible: true, at: T0 + 3 * MINUTE })).toBe(true);
          expect(await store.authenticators.recordUse(passkey.id, { counter: 0, backedUp: true, backupEligible: true, at: T0 + 4 * MINUTE })).toBe(false);
          expect(await read()).toMatchObject({ counter: 1, last_used_at: T0 + 3 * MINUTE });
        });

        it('of concurrent uses presenting one counter value exactly one is recorded', async () => {
          const { passkey, read } = await passkeyWithCounter(3);
          const results = await Promise.all(
            Array.from({ length: 10 }, (_, i) => store.authenticators.recordUse(passkey.id, { counter: 4, backedUp: false, backupEligible: false, at: T0 + i })),
          );
          expect(results.filter(Boolean)).toHaveLength(1);
          expect((await read()).counter).toBe(4);
        });

        it('an unknown id returns false', async () => {
          expect(await store.authenticators.recordUse(rid(), { counter: 1, backedUp: false, backupEligible: false, at: T0 })).toBe(false);
        });
      });
    });

    describe('sessions', () => {
      it('insert and find by hash return every field', async () => {
        const user = await insertUser();
        const session = newSession(user.id, { aal: 2 });
        await store.sessions.insert(session);
        const found = await store.sessions.findByHash(session.id_hash);
        expect(found).toEqual(session);
        expect(typeof found!.expires_at).toBe('number');
        expect(await store.sessions.findByHash(rid(32))).toBeUndefined();
      });

      it('touch moves last_seen_at; markAuthenticated moves both times', async () => {
        const user = await insertUser();
        const session = newSession(user.id);
        await store.sessions.insert(session);
        await store.sessions.touch(session.id_hash, T0 + MINUTE);
        expect(await store.sessions.findByHash(session.id_hash)).toMatchObject({ last_seen_at: T0 + MINUTE, authenticated_at: T0 });
        await store.sessions.markAuthenticated(session.id_hash, T0 + 2 * MINUTE);
        expect(await store.sessions.findByHash(session.id_hash)).toMatchObject({ last_seen_at: T0 + 2 * MINUTE, authenticated_at: T0 + 2 * MINUTE, created_at: T0 });
      });

      it('listForUser returns the user’s unexpired sessions, most recently seen first', async () => {
        const ada = await insertUser();
        const bob = await insertUser();
        const older = newSession(ada.id, { last_seen_at: T0 + 1 });
        const newer = newSession(ada.id, { last_seen_at: T0 + 2 });
        const expired = newSession(ada.id, { expires_at: T0 + 10 });
        const bobs = newSession(bob.id);
        for (const s of [older, newer, expired, bobs]) await store.sessions.insert(s);
        expect((await store.sessions.listForUser(ada.id, T0 + 10)).map((s) => s.id_hash)).toEqual([newer.id_hash, older.id_hash]);
        // With an idle timeout, a session not seen within it is over too.
        expect((await store.sessions.listForUser(ada.id, T0 + 10, 9)).map((s) => s.id_hash)).toEqual([newer.id_hash]);
      });

      it('deleteByPublicId ends only the owner’s session; delete ends one by hash', async () => {
        const ada = await insertUser();
        const mallory = await insertUser();
        const session = newSession(ada.id);
        const other = newSession(ada.id);
        await store.sessions.insert(session);
        await store.sessions.insert(other);
        expect(await store.sessions.deleteByPublicId(mallory.id, session.public_id)).toBe(false);
        expect(await store.sessions.findByHash(session.id_hash)).toBeDefined();
        expect(await store.sessions.deleteByPublicId(ada.id, session.public_id)).toBe(true);
        expect(await store.sessions.findByHash(session.id_hash)).toBeUndefined();
        expect(await store.sessions.deleteByPublicId(ada.id, session.public_id)).toBe(false);
        await store.sessions.delete(other.id_hash);
        expect(await store.sessions.findByHash(other.id_hash)).toBeUndefined();
      });

      it('a public id ends only its own user\'s session', async () => {
        // Public ids are 96 random bits with no unique index (migration 0005): every lookup is scoped to the user.
        const user = await insertUser();
        const other = await insertUser();
        const session = newSession(user.id);
        await store.sessions.insert(session);
        expect(await store.sessions.deleteByPublicId(other.id, session.public_id)).toBe(false);
        expect(await store.sessions.findByHash(session.id_hash)).toBeDefined();
        expect(await store.sessions.deleteByPublicId(user.id, session.public_id)).toBe(true);
        expect(await store.sessions.findByHash(session.id_hash)).toBeUndefined();
      });

      it('deleteExpired removes sessions past their absolute or idle limit', async () => {
        const s = await freshStore();
        const user = await s.users.insert(newUser());
        const now = T0 + 60 * MINUTE;
        const idleMs = 30 * MINUTE;
        const absolute = newSession(user.id, { expires_at: now, last_seen_at: now - MINUTE });
        const idle = newSession(user.id, { last_seen_at: now - idleMs, expires_at: now + MINUTE });
        const alive = newSession(user.id, { last_seen_at: now - idleMs + 1, expires_at: now + 1 });
        for (const x of [absolute, idle, alive]) await s.sessions.insert(x);
        expect(await s.sessions.deleteExpired(now, idleMs)).toBe(2);
        expect((await s.kysely.selectFrom('sessions').select('id_hash').execute()).map((r) => r.id_hash)).toEqual([alive.id_hash]);
        expect(await s.sessions.deleteExpired(now, idleMs)).toBe(0);
      });
    });

    it.runIf(target.name === 'sqlite')('audit filters by event and by actor are index searches, not table scans', async () => {
      const plan = async (filter: Parameters<Store['audit']['search']>[0]) => {
        const compiled = store.audit.searchQuery(filter, 10).compile();
        const { rows } = await db.kysely.executeQuery<{ detail: string }>(CompiledQuery.raw(`explain query plan ${compiled.sql}`, [...compiled.parameters]));
        return rows.map((r) => r.detail).join('\n');
      };
      expect(await plan({ event: 'authenticator.removed' })).toMatch(/audit_events USING INDEX audit_events_event/);
      const byActor = await plan({ actorUserId: 'u1' });
      expect(byActor).toMatch(/audit_events USING INDEX audit_events_actor/);
      expect(byActor).toMatch(/audit_events USING INDEX audit_events_subject/);
      expect(byActor).not.toMatch(/SCAN audit_events/);
      const byToken = await plan({ actorTokenIds: ['t1', 't2'] });
      expect(byToken).toMatch(/audit_events USING INDEX audit_events_actor_token/);
      expect(byToken).not.toMatch(/SCAN audit_events/);
    });

    describe('joined reads', () => {
      it('sessions.findWithUser and authenticators.findByCredentialIdWithUser return the row and its owner', async () => {
        const user = await insertUser({ display_name: 'Joined Person' });
        const session = newSession(user.id);
        await store.sessions.insert(session);
        const passkey = newAuthenticator(user.id);
        await store.authenticators.insert(passkey);
        expect(await store.sessions.findWithUser(session.id_hash)).toEqual({ session, user });
        const found = await store.authenticators.findByCredentialIdWithUser(passkey.credential_id);
        expect(found?.user).toEqual(user);
        expect(found?.authenticator).toEqual(await store.authenticators.findByCredentialId(passkey.credential_id));
        expect(await store.sessions.findWithUser('missing')).toBeUndefined();
        expect(await store.authenticators.findByCredentialIdWithUser('missing')).toBeUndefined();
      });

      it("authenticators.listForEmail returns the account's id with its authenticators of one kind, oldest first, or neither", async () => {
        const user = await insertUser({ email: `Listed-${rid()}@Example.org` });
        const first = newAuthenticator(user.id, { created_at: T0 + 3 });
        const app = newAuthenticator(user.id, { created_at: T0 + 1, type: 'totp' });
        const second = newAuthenticator(user.id, { created_at: T0 + 2, transports: '["usb"]' });
        for (const a of [first, app, second]) await store.authenticators.insert(a);
        const listed = await store.authenticators.listForEmail(`  ${user.email.toUpperCase()} `, 'passkey');
        expect(listed).toEqual({
          userId: user.id,
          authenticators: [second, first].map((a) => ({ credential_id: a.credential_id, transports: a.transports })),
        });
        expect(await store.authenticators.listForEmail(user.email, 'totp')).toEqual({ userId: user.id, authenticators: [{ credential_id: app.credential_id, transports: app.transports }] });
        const appOnly = await insertUser();
        await store.authenticators.insert(newAuthenticator(appOnly.id, { type: 'totp' }));
        expect(await store.authenticators.listForEmail(appOnly.email, 'passkey')).toEqual({ userId: appOnly.id, authenticators: [] });
        const without = await insertUser();
        expect(await store.authenticators.listForEmail(without.email, 'passkey')).toEqual({ userId: without.id, authenticators: [] });
        expect(await store.authenticators.listForEmail(`nobody-${rid()}@example.org`, 'passkey')).toEqual({ userId: undefined, authenticators: [] });
      });
    });

    describe('challenges', () => {
      const asFlow = (c: NewFlow, consumedAt: number | null) => ({ ...c, state: consumedAt === null ? 'active' : 'consumed', consumed_at: consumedAt, failed_attempts: 0 });

      it('insert stores a challenge found by its lookup, as an active flow; a lookup is unique', async () => {
        const challenge = newFlow();
        await store.challenges.insert(challenge);
        expect(await store.challenges.find(challenge.lookup)).toEqual(asFlow(challenge, null));
        expect(await store.challenges.find(rid(32))).toBeUndefined();
        expect(isUniqueViolation(await rejectionOf(store.challenges.insert(newFlow({ lookup: challenge.lookup }))))).toBe(true);
        // Not in the flows table.
        expect(await store.flows.findByLookup(challenge.lookup)).toBeUndefined();
      });

      it('consume uses a challenge once, only with the right type and binding and before it expires, and deletes it', async () => {
        const now = T0 + MINUTE;
        const challenge = newFlow({ expires_at: now + MINUTE });
        await store.challenges.insert(challenge);
        expect(await store.challenges.consume(challenge.lookup, 'other-type', challenge.binding_hash!, now)).toBeUndefined();
        expect(await store.challenges.consume(challenge.lookup, challenge.type, 'other-binding', now)).toBeUndefined();
        expect(await store.challenges.find(challenge.lookup)).toEqual(asFlow(challenge, null));
        const results = await Promise.all(Array.from({ length: 10 }, () => store.challenges.consume(challenge.lookup, challenge.type, challenge.binding_hash!, now)));
        const winners = results.filter((r) => r !== undefined);
        expect(winners).toEqual([asFlow(challenge, now)]);
        expect(await store.challenges.find(challenge.lookup)).toBeUndefined();
        const expired = newFlow({ expires_at: now });
        await store.challenges.insert(expired);
        expect(await store.challenges.consume(expired.lookup, expired.type, expired.binding_hash!, now)).toBeUndefined();
      });

      it('consumeWithCredential uses a challenge once and returns it with the credential and its owner', async () => {
        const now = T0 + MINUTE;
        const user = await insertUser({ display_name: 'Consuming Person' });
        const passkey = newAuthenticator(user.id);
        await store.authenticators.insert(passkey);
        const authenticator = await store.authenticators.findByCredentialId(passkey.credential_id);
        const challenge = newFlow({ expires_at: now + MINUTE });
        await store.challenges.insert(challenge);
        const consume = (c: NewFlow, credentialId: string, type = c.type, binding = c.binding_hash!) => store.challenges.consumeWithCredential(c.lookup, type, binding, now, credentialId);
        expect(await consume(challenge, passkey.credential_id, 'other-type')).toBeUndefined();
        expect(await consume(challenge, passkey.credential_id, challenge.type, 'other-binding')).toBeUndefined();
        expect(await store.challenges.find(challenge.lookup)).toEqual(asFlow(challenge, null));
        const results = await Promise.all(Array.from({ length: 10 }, () => consume(challenge, passkey.credential_id)));
        const winners = results.filter((r) => r !== undefined);
        expect(winners).toEqual([{ flow: asFlow(challenge, now), credential: { authenticator, user } }]);
        expect(await store.challenges.find(challenge.lookup)).toBeUndefined();
        // An unknown credential still uses the challenge; only the credential is missing.
        const other = newFlow({ expires_at: now + MINUTE });
        await store.challenges.insert(other);
        expect(await consume(other, 'missing')).toEqual({ flow: asFlow(other, now), credential: undefined });
        const expired = newFlow({ expires_at: now });
        await store.challenges.insert(expired);
        expect(await consume(expired, passkey.credential_id)).toBeUndefined();
      });

      it('counts the challenges not yet expired, and deletes the expired ones', async () => {
        const now = T0 + 10 * MINUTE;
        const before = await store.challenges.countActive(now);
        const live = [newFlow({ expires_at: now + 1 }), newFlow({ expires_at: now + MINUTE })];
        const ended = [newFlow({ expires_at: now }), newFlow({ expires_at: now - MINUTE })];
        for (const c of [...live, ...ended]) await store.challenges.insert(c);
        expect(await store.challenges.countActive(now)).toBe(before + 2);
        expect(await store.challenges.deleteExpired(now)).toBeGreaterThanOrEqual(2);
        for (const c of ended) expect(await store.challenges.find(c.lookup)).toBeUndefined();
        for (const c of live) expect(await store.challenges.find(c.lookup)).toEqual(asFlow(c, null));
      });

      it('inside a transaction a challenge\'s insert and use are durable like the rest of it (outside one on PostgreSQL they are not: sharedConnection.test.ts)', async () => {
        const setting = async (tx: Store) => (await sql<{ value: string }>`select current_setting('synchronous_commit') as value`.execute(tx.kysely)).rows[0]!.value;
        const user = await insertUser();
        const passkey = newAuthenticator(user.id);
        await store.authenticators.insert(passkey);
        const used = newFlow({ expires_at: T0 + MINUTE });
        const usedWithCredential = newFlow({ expires_at: T0 + MINUTE });
        const seen = await store.transaction(async (tx) => {
          await tx.challenges.insert(used);
          await tx.challenges.insert(usedWithCredential);
          const consumed = await tx.challenges.consume(used.lookup, used.type, used.binding_hash!, T0);
          const withCredential = await tx.challenges.consumeWithCredential(usedWithCredential.lookup, usedWithCredential.type, usedWithCredential.binding_hash!, T0, passkey.credential_id);
          return { consumed, withCredential, setting: db.dialect === 'postgres' ? await setting(tx) : 'on' };
        });
        expect(seen.consumed).toMatchObject({ id: used.id, state: 'consumed' });
        expect(seen.withCredential).toMatchObject({ flow: { id: usedWithCredential.id, state: 'consumed' }, credential: { user: { id: user.id } } });
        expect(seen.setting).toBe('on');
      });
    });

    describe('flows', () => {
      it('insert stores an active flow found by lookup and by id', async () => {
        const flow = newFlow();
        await store.flows.insert(flow);
        const expected = { ...flow, state: 'active', consumed_at: null, failed_attempts: 0 };
        expect(await store.flows.findByLookup(flow.lookup)).toEqual(expected);
        expect(await store.flows.findById(flow.id)).toEqual(expected);
        expect(await store.flows.findByLookup(rid(32))).toBeUndefined();
      });

      it('a lookup (challenge) is unique', async () => {
        const flow = newFlow();
        await store.flows.insert(flow);
        expect(isUniqueViolation(await rejectionOf(store.flows.insert(newFlow({ lookup: flow.lookup }))))).toBe(true);
      });

      it('consume succeeds once and records when', async () => {
        const flow = newFlow();
        await store.flows.insert(flow);
        expect(await store.flows.consume(flow.id, T0 + MINUTE)).toBe(true);
        expect(await store.flows.consume(flow.id, T0 + MINUTE)).toBe(false);
        expect(await store.flows.findById(flow.id)).toMatchObject({ state: 'consumed', consumed_at: T0 + MINUTE });
        expect(await store.flows.consume(rid(), T0)).toBe(false);
      });

      it('consumeByLookup consumes once, only with the right type and binding, and returns the flow', async () => {
        const now = T0 + MINUTE;
        const flow = newFlow({ expires_at: now + MINUTE });
        await store.flows.insert(flow);
        expect(await store.flows.consumeByLookup(flow.lookup, 'other-type', flow.binding_hash!, now)).toBeUndefined();
        expect(await store.flows.consumeByLookup(flow.lookup, flow.type, 'other-binding', now)).toBeUndefined();
        const results = await Promise.all(Array.from({ length: 10 }, () => store.flows.consumeByLookup(flow.lookup, flow.type, flow.binding_hash!, now)));
        const winners = results.filter((r) => r !== undefined);
        expect(winners).toHaveLength(1);
        expect(winners[0]).toMatchObject({ id: flow.id, state: 'consumed', consumed_at: now, data: flow.data });
        const expired = newFlow({ expires_at: now });
        await store.flows.insert(expired);
        expect(await store.flows.consumeByLookup(expired.lookup, expired.type, expired.binding_hash!, now)).toBeUndefined();
      });

      it('of ten concurrent consumes of one flow exactly one succeeds', async () => {
        for (let round = 0; round < 5; round++) {
          const flow = newFlow();
          await store.flows.insert(flow);
          const results = await Promise.all(Array.from({ length: 10 }, (_, i) => store.flows.consume(flow.id, T0 + i)));
          expect(results.filter(Boolean)).toHaveLength(1);
          const consumedAt = T0 + results.indexOf(true);
          expect(await store.flows.findById(flow.id)).toMatchObject({ state: 'consumed', consumed_at: consumedAt });
        }
      });

      it('consume refuses an expired flow and leaves it active', async () => {
        const flow = newFlow({ expires_at: T0 + MINUTE });
        await store.flows.insert(flow);
        expect(await store.flows.consume(flow.id, T0 + MINUTE)).toBe(false);
        expect(await store.flows.consume(flow.id, T0 + 2 * MINUTE)).toBe(false);
        expect(await store.flows.findById(flow.id)).toMatchObject({ state: 'active', consumed_at: null });
        expect(await store.flows.consume(flow.id, T0 + MINUTE - 1)).toBe(true);
      });

      it('updateData replaces the data', async () => {
        const flow = newFlow();
        await store.flows.insert(flow);
        await store.flows.updateData(flow.id, '{"step":2}');
        expect((await store.flows.findById(flow.id))!.data).toBe('{"step":2}');
      });

      it('swapData replaces the data only if it is unchanged: of ten concurrent swaps exactly one succeeds', async () => {
        const flow = newFlow();
        await store.flows.insert(flow);
        const results = await Promise.all(Array.from({ length: 10 }, (_, i) => store.flows.swapData(flow.id, flow.data, `{"taken":${i}}`)));
        expect(results.filter(Boolean)).toHaveLength(1);
        expect((await store.flows.findById(flow.id))!.data).toBe(`{"taken":${results.indexOf(true)}}`);
        expect(await store.flows.swapData(flow.id, flow.data, '{}')).toBe(false);
      });

      it('deleteEnded removes flows that expired more than the grace period ago', async () => {
        const s = await freshStore();
        const now = T0 + 60 * MINUTE;
        const grace = 10 * MINUTE;
        const longGone = newFlow({ expires_at: now - grace });
        const recentlyExpired = newFlow({ expires_at: now - grace + 1 });
        const active = newFlow({ expires_at: now + MINUTE });
        const consumed = newFlow({ expires_at: now + MINUTE });
        for (const f of [longGone, recentlyExpired, active, consumed]) await s.flows.insert(f);
        expect(await s.flows.consume(consumed.id, now - 30 * MINUTE)).toBe(true);
        expect(await s.flows.deleteEnded(now, grace)).toBe(1);
        const left = (await s.kysely.selectFrom('flows').select('id').orderBy('id').execute()).map((r) => r.id);
        expect(left).toEqual([recentlyExpired.id, active.id, consumed.id].sort());
      });

      it("revokeActiveForUser revokes only that user's active flows of that type", async () => {
        const s = await freshStore();
        const userA = newUser();
        const userB = newUser();
        await s.users.insert(userA);
        await s.users.insert(userB);
        const now = T0 + MINUTE;
        const keep = newFlow({ type: 'invite', user_id: userA.id, expires_at: now + MINUTE });
        const older = newFlow({ type: 'invite', user_id: userA.id, expires_at: now + MINUTE });
        const expired = newFlow({ type: 'invite', user_id: userA.id, expires_at: now - 1 });
        const otherType = newFlow({ type: 'signin', user_id: userA.id, expires_at: now + MINUTE });
        const otherUser = newFlow({ type: 'invite', user_id: userB.id, expires_at: now + MINUTE });
        for (const f of [keep, older, expired, otherType, otherUser]) await s.flows.insert(f);
        expect(await s.flows.revokeActiveForUser(userA.id, 'invite', now, keep.id)).toBe(1);
        expect((await s.flows.findById(older.id))!.state).toBe('revoked');
        for (const f of [keep, expired, otherType, otherUser]) expect((await s.flows.findById(f.id))!.state).toBe('active');
        expect(await s.flows.consume(older.id, now)).toBe(false);
      });

      it('deleteEnded can keep or target some flow types', async () => {
        const s = await freshStore();
        const now = T0 + 60 * MINUTE;
        const invite = newFlow({ type: 'invite', expires_at: now - MINUTE });
        const ceremony = newFlow({ type: 'signin', expires_at: now - MINUTE });
        for (const f of [invite, ceremony]) await s.flows.insert(f);
        expect(await s.flows.deleteEnded(now, 0, { exceptTypes: ['invite'] })).toBe(1);
        expect(await s.flows.findById(invite.id)).toBeDefined();
        expect(await s.flows.deleteEnded(now, 0, { types: ['signin'] })).toBe(0);
        expect(await s.flows.deleteEnded(now, 0, { types: ['invite'] })).toBe(1);
      });
    });

    describe('audit', () => {
      it('record stores the event; listForSubject is newest first, ties by insertion', async () => {
        const subject = rid();
        const actor = rid();
        await store.audit.record({ event: 'signin', outcome: 'success', subjectUserId: subject, actorUserId: actor, at: T0 + 1, ip: '192.0.2.1', userAgent: 'x'.repeat(600), detail: { method: 'passkey' } });
        await store.audit.record({ event: 'passkey.added', outcome: 'success', subjectUserId: subject, authenticatorId: 'a1', at: T0 + 2 });
        await store.audit.record({ event: 'passkey.renamed', outcome: 'success', subjectUserId: subject, at: T0 + 2 });
        await store.audit.record({ event: 'signin.failed', outcome: 'failure', subjectUserId: rid(), at: T0 + 3 });

        const events = await store.audit.listForSubject(subject);
        expect(events.map((e) => e.event)).toEqual(['passkey.renamed', 'passkey.added', 'signin']);
        const signin = events[2]!;
        expect(signin).toMatchObject({ at: T0 + 1, outcome: 'success', actor_user_id: actor, subject_user_id: subject, authenticator_id: null, ip: '192.0.2.1' });
        expect(typeof signin.id).toBe('number');
        expect(signin.user_agent).toHaveLength(512);
        expect(JSON.parse(signin.detail)).toEqual({ method: 'passkey' });
        expect(events[0]!.detail).toBe('{}');
        expect(events[0]!.ip).toBeNull();
        expect((await store.audit.listForSubject(subject, 2)).map((e) => e.event)).toEqual(['passkey.renamed', 'passkey.added']);
      });

      it('listByEvent returns one event kind, newest first', async () => {
        const event = `test.${rid()}`;
        const subjects = [rid(), rid(), rid()];
        for (const [i, subjectUserId] of subjects.entries()) await store.audit.record({ event, outcome: 'success', subjectUserId, at: T0 + i });
        await store.audit.record({ event: `other.${rid()}`, outcome: 'success', at: T0 });
        expect((await store.audit.listByEvent(event)).map((e) => e.subject_user_id)).toEqual([...subjects].reverse());
        expect(await store.audit.listByEvent(event, 1)).toHaveLength(1);
      });
    });

    describe('oidc models', () => {
      const model = (overrides: Partial<Parameters<Store['oidcModels']['upsert']>[0]> = {}) => ({
        kind: 'AuthorizationCode',
        id: rid(16),
        payload: JSON.stringify({ accountId: 'a', exp: 1 }),
        grantId: rid(),
        expiresAt: T0 + MINUTE,
        ...overrides,
      });

      it('finds a model by id until it expires, and by kind only', async () => {
        const m = model();
        await store.oidcModels.upsert(m);
        expect(await store.oidcModels.find('AuthorizationCode', m.id, T0)).toEqual({ payload: m.payload, consumedAt: null });
        expect(await store.oidcModels.find('AccessToken', m.id, T0)).toBeUndefined();
        expect(await store.oidcModels.find('AuthorizationCode', m.id, T0 + MINUTE)).toBeUndefined();
      });

      it('a model without expiry never expires', async () => {
        const m = model({ kind: 'Grant', expiresAt: null });
        await store.oidcModels.upsert(m);
        expect(await store.oidcModels.find('Grant', m.id, T0 * 2)).toBeDefined();
      });

      it('upsert replaces the payload and keeps the consumed mark', async () => {
        const m = model();
        await store.oidcModels.upsert(m);
        expect(await store.oidcModels.consume(m.kind, m.id, T0 + 5)).toBe(true);
        await store.oidcModels.upsert({ ...m, payload: '{"v":2}' });
        expect(await store.oidcModels.find(m.kind, m.id, T0)).toEqual({ payload: '{"v":2}', consumedAt: T0 + 5 });
      });

      it('of concurrent consumes exactly one wins', async () => {
        const m = model();
        await store.oidcModels.upsert(m);
        const results = await Promise.all(Array.from({ length: 10 }, () => store.oidcModels.consume(m.kind, m.id, T0)));
        expect(results.filter(Boolean)).toHaveLength(1);
      });

      it('finds by uid and by user code within a kind', async () => {
        const m = model({ kind: 'Session', uid: rid(), userCode: rid() });
        await store.oidcModels.upsert(m);
        expect((await store.oidcModels.findByUid('Session', m.uid!, T0))?.payload).toBe(m.payload);
        expect((await store.oidcModels.findByUserCode('Session', m.userCode!, T0))?.payload).toBe(m.payload);
        expect(await store.oidcModels.findByUid('Interaction', m.uid!, T0)).toBeUndefined();
      });

      it('revokeByGrantId removes every kind of that grant, nothing else', async () => {
        const grantId = rid();
        const code = model({ grantId });
        const refresh = model({ kind: 'RefreshToken', grantId });
        const other = model();
        for (const m of [code, refresh, other]) await store.oidcModels.upsert(m);
        expect(await store.oidcModels.revokeByGrantId(grantId)).toBe(2);
        expect(await store.oidcModels.find(code.kind, code.id, T0)).toBeUndefined();
        expect(await store.oidcModels.find(refresh.kind, refresh.id, T0)).toBeUndefined();
        expect(await store.oidcModels.find(other.kind, other.id, T0)).toBeDefined();
      });

      it('destroy and deleteExpired', async () => {
        const s = await freshStore();
        const live = model({ expiresAt: T0 + 2 * MINUTE });
        const old = model({ expiresAt: T0 });
        const forever = model({ expiresAt: null });
        for (const m of [live, old, forever]) await s.oidcModels.upsert(m);
        expect(await s.oidcModels.deleteExpired(T0 + MINUTE)).toBe(1);
        await s.oidcModels.destroy(live.kind, live.id);
        expect(await s.oidcModels.find(live.kind, live.id, T0)).toBeUndefined();
        expect(await s.oidcModels.find(forever.kind, forever.id, T0)).toBeDefined();
      });
    });

    describe('signing keys', () => {
      it('the newest current key comes first; retired keys stay published until their time', async () => {
        const s = await freshStore();
        const key = (kid: string, created: number) => ({ kid, alg: 'RS256', private_jwk: 'sealed', created_at: created, retires_at: null });
        await s.signingKeys.insert(key('old', T0));
        expect(await s.signingKeys.countCurrent()).toBe(1);
        expect(await s.signingKeys.retireCurrent(T0 + 60 * MINUTE)).toBe(1);
        await s.signingKeys.insert(key('new', T0 + MINUTE));
        expect((await s.signingKeys.listPublished(T0 + MINUTE)).map((k) => k.kid)).toEqual(['new', 'old']);
        expect((await s.signingKeys.listPublished(T0 + 60 * MINUTE)).map((k) => k.kid)).toEqual(['new']);
        expect(await s.signingKeys.countCurrent()).toBe(1);
        // Counted per algorithm: a deployment with only an RS256 key gets its ES256 one on the next start.
        expect(await s.signingKeys.countCurrent('RS256')).toBe(1);
        expect(await s.signingKeys.countCurrent('ES256')).toBe(0);
      });
    });

    describe('services', () => {
      it('insert, find, list and remove', async () => {
        const s = await freshStore();
        const service = {
          client_id: rid(),
          name: 'Rota',
          client_type: 'confidential' as const,
          client_secret: 'sealed',
          redirect_uris: JSON.stringify(['https://rota.example/cb']),
          post_logout_redirect_uris: '[]',
          aal: 2,
          first_party: 1,
          created_at: T0,
          id_token_alg: 'ES256',
        };
        await s.services.insert(service);
        expect(await s.services.find(service.client_id)).toEqual(service);
        expect(await s.services.list()).toEqual([service]);
        expect(await s.services.remove(service.client_id)).toBe(true);
        expect(await s.services.find(service.client_id)).toBeUndefined();
      });
    });

    describe('session step-up', () => {
      it('raises the level and moves the session to the stronger authenticator, never lowers it', async () => {
        const user = await insertUser();
        const session = newSession(user.id, { aal: 1, authenticator_id: 'linked' });
        await store.sessions.insert(session);
        await store.sessions.stepUp(session.id_hash, T0 + MINUTE, 2, 'passkey');
        expect(await store.sessions.findByHash(session.id_hash)).toMatchObject({ aal: 2, authenticator_id: 'passkey', authenticated_at: T0 + MINUTE });
        await store.sessions.stepUp(session.id_hash, T0 + 2 * MINUTE, 1, 'weaker');
        expect(await store.sessions.findByHash(session.id_hash)).toMatchObject({ aal: 2, authenticator_id: 'passkey', authenticated_at: T0 + 2 * MINUTE });
      });
    });

    describe('settings', () => {
      it('getOrInsert keeps the first value', async () => {
        const key = `k-${rid()}`;
        expect(await store.settings.get(key)).toBeUndefined();
        expect(await store.settings.getOrInsert(key, 'first')).toBe('first');
        expect(await store.settings.getOrInsert(key, 'second')).toBe('first');
        expect(await store.settings.get(key)).toBe('first');
      });

      it('concurrent getOrInsert calls all see the one value that won', async () => {
        const key = `k-${rid()}`;
        const results = await Promise.all(Array.from({ length: 10 }, (_, i) => store.settings.getOrInsert(key, `v${i}`)));
        expect(new Set(results).size).toBe(1);
        expect(await store.settings.get(key)).toBe(results[0]);
      });

      it('set replaces the value', async () => {
        const key = `k-${rid()}`;
        await store.settings.set(key, 'one');
        await store.settings.set(key, 'two');
        expect(await store.settings.get(key)).toBe('two');
      });
    });

    describe('fido metadata', () => {
      it('keeps one BLOB, replaced only by a higher serial, and reads its summary without the BLOB', async () => {
        const row = (serial: number, blob: string) => ({ serial, next_update: '2027-01-01', entries: 3, blob, source: 'test', imported_at: T0 + serial });
        const before = (await store.fidoMetadata.current())?.serial ?? 0;
        expect(await store.fidoMetadata.replace(row(before + 10, 'ten'))).toBe(true);
        expect(await store.fidoMetadata.replace(row(before + 10, 'ten again'))).toBe(false);
        expect(await store.fidoMetadata.replace(row(before + 5, 'five'))).toBe(false);
        expect((await store.fidoMetadata.current())?.blob).toBe('ten');
        const racers = await Promise.all([11, 12, 13].map((n) => store.fidoMetadata.replace(row(before + n, `n${n}`))));
        expect(racers.some(Boolean)).toBe(true);
        expect(await store.fidoMetadata.current()).toMatchObject({ serial: before + 13, blob: 'n13' });
        const summary = await store.fidoMetadata.summary();
        expect(summary).toMatchObject({ serial: before + 13, entries: 3, source: 'test' });
        expect(summary).not.toHaveProperty('blob');
      });
    });

    describe('signin failures', () => {
      it('count a run of failures, and a run older than forgetBefore reads as none and starts again at 1', async () => {
        const key = `k-${rid()}`;
        expect(await store.signinFailures.find(key, T0)).toBeUndefined();
        expect(await store.signinFailures.recordFailure(key, T0, T0 - MINUTE)).toBe(1);
        expect(await store.signinFailures.recordFailure(key, T0 + 1, T0 - MINUTE)).toBe(2);
        expect(await store.signinFailures.find(key, T0 - MINUTE)).toEqual({ failed_signins: 2, last_failed_signin_at: T0 + 1 });
        expect(await store.signinFailures.find(key, T0 + 2)).toBeUndefined();
        expect(await store.signinFailures.recordFailure(key, T0 + 3 * MINUTE, T0 + 2)).toBe(1);
        expect(await store.signinFailures.find(key, T0)).toEqual({ failed_signins: 1, last_failed_signin_at: T0 + 3 * MINUTE });
      });

      it('concurrent failures are each counted', async () => {
        const key = `k-${rid()}`;
        await Promise.all(Array.from({ length: 10 }, () => store.signinFailures.recordFailure(key, T0, T0 - MINUTE)));
        expect((await store.signinFailures.find(key, T0 - MINUTE))?.failed_signins).toBe(10);
      });

      it('deleteBefore removes the runs that ended before it, and only those', async () => {
        const s = await freshStore();
        await s.signinFailures.recordFailure('old', T0, T0 - MINUTE);
        await s.signinFailures.recordFailure('recent', T0 + MINUTE, T0);
        expect(await s.signinFailures.deleteBefore(T0 + 1)).toBe(1);
        expect(await s.kysely.selectFrom('signin_failures').select('key').execute()).toEqual([{ key: 'recent' }]);
      });
    });

    describe('Store.transaction', () => {
      it('rolls back every write when the callback throws', async () => {
        const user = newUser();
        const passkey = newAuthenticator(user.id);
        const failure = new Error('boom');
        await expect(
          store.transaction(async (tx) => {
            await tx.users.insert(user);
            await tx.authenticators.insert(passkey);
            await tx.audit.record({ event: 'signup', outcome: 'success', subjectUserId: user.id, at: T0 });
            expect(await tx.users.findById(user.id)).toBeDefined();
            throw failure;
          }),
        ).rejects.toBe(failure);
        expect(await store.users.findById(user.id)).toBeUndefined();
        expect(await store.authenticators.findByCredentialId(passkey.credential_id)).toBeUndefined();
        expect(await store.audit.listForSubject(user.id)).toEqual([]);
      });

      it('recordUseOrFail: a use that moves the counter commits with the writes after it, and afterCommit runs after the commit', async () => {
        const user = await insertUser();
        const passkey = newAuthenticator(user.id, { counter: 5 });
        await store.authenticators.insert(passkey);
        const session = newSession(user.id);
        const order: string[] = [];
        await store.transaction(async (tx) => {
          await tx.authenticators.recordUseOrFail(passkey.id, { counter: 6, backedUp: true, backupEligible: true, at: T0 + MINUTE });
          await tx.sessions.insert(session);
          tx.afterCommit(() => order.push('after commit'));
          order.push('callback done');
        }, { groupCommit: true });
        expect(order).toEqual(['callback done', 'after commit']);
        expect(await store.authenticators.findForUser(user.id, passkey.id)).toMatchObject({ counter: 6, backed_up: 1, last_used_at: T0 + MINUTE });
        expect(await store.sessions.findWithUser(session.id_hash)).toBeDefined();
      });

      it.each([
        ['an equal counter', 5, 5],
        ['a lower counter', 5, 4],
        ['a zero counter after a non-zero one', 5, 0],
      ])('recordUseOrFail: %s fails the transaction; none of its writes land and afterCommit never runs', async (_label, stored, presented) => {
        const user = await insertUser();
        const passkey = newAuthenticator(user.id, { counter: stored });
        await store.authenticators.insert(passkey);
        const before = await store.authenticators.findForUser(user.id, passkey.id);
        const session = newSession(user.id);
        let committed = false;
        const error = await rejectionOf(
          store.transaction(async (tx) => {
            await tx.authenticators.recordUseOrFail(passkey.id, { counter: presented, backedUp: true, backupEligible: true, at: T0 + MINUTE });
            await tx.sessions.insert(session);
            await tx.audit.record({ event: 'signin', outcome: 'success', subjectUserId: user.id, at: T0 + MINUTE });
            tx.afterCommit(() => (committed = true));
          }, { groupCommit: true }),
        );
        expect(isCounterDidNotMove(error)).toBe(true);
        expect(committed).toBe(false);
        expect(await store.authenticators.findForUser(user.id, passkey.id)).toEqual(before);
        expect(await store.sessions.findWithUser(session.id_hash)).toBeUndefined();
        expect(await store.audit.listForSubject(user.id)).toEqual([]);
        // Outside a transaction it fails at once, and changes nothing.
        expect(isCounterDidNotMove(await rejectionOf(store.authenticators.recordUseOrFail(passkey.id, { counter: presented, backedUp: false, backupEligible: false, at: T0 })))).toBe(true);
        expect(await store.authenticators.findForUser(user.id, passkey.id)).toEqual(before);
      });

      it('recordUseOrFail: of concurrent transactions presenting one counter value exactly one commits its writes', async () => {
        const user = await insertUser();
        const passkey = newAuthenticator(user.id, { counter: 3 });
        await store.authenticators.insert(passkey);
        const sessions = Array.from({ length: 10 }, () => newSession(user.id));
        const results = await Promise.allSettled(
          sessions.map((session, i) =>
            store.transaction(async (tx) => {
              await tx.authenticators.recordUseOrFail(passkey.id, { counter: 4, backedUp: false, backupEligible: false, at: T0 + i });
              await tx.sessions.insert(session);
            }, { groupCommit: true }),
          ),
        );
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results) if (r.status === 'rejected') expect(isCounterDidNotMove(r.reason)).toBe(true);
        const won = results.findIndex((r) => r.status === 'fulfilled');
        const stored = await Promise.all(sessions.map((session) => store.sessions.findWithUser(session.id_hash)));
        expect(stored.map((found) => found !== undefined)).toEqual(sessions.map((_, i) => i === won));
        expect(await store.authenticators.findForUser(user.id, passkey.id)).toMatchObject({ counter: 4, last_used_at: T0 + won });
      });

      it('rolls back earlier writes when a later one violates a constraint', async () => {
        const taken = await insertUser();
        const existing = newAuthenticator(taken.id);
        await store.authenticators.insert(existing);
        const user = newUser();
        const error = await rejectionOf(
          store.transaction(async (tx) => {
            await tx.users.insert(user);
            await tx.authenticators.insert(newAuthenticator(user.id, { credential_id: existing.credential_id }));
          }),
        );
        expect(isUniqueViolation(error)).toBe(true);
        expect(await store.users.findById(user.id)).toBeUndefined();
      });

      it('commits every write when the callback returns, and a nested transaction joins the outer one', async () => {
        const user = newUser();
        const passkey = newAuthenticator(user.id);
        const result = await store.transaction(async (tx) => {
          await tx.users.insert(user);
          await tx.transaction(async (inner) => inner.authenticators.insert(passkey));
          return 'done';
        });
        expect(result).toBe('done');
        expect(await store.users.findById(user.id)).toBeDefined();
        expect(await store.authenticators.findByCredentialId(passkey.credential_id)).toBeDefined();

        const other = newUser();
        await expect(
          store.transaction(async (tx) => {
            await tx.users.insert(other);
            await tx.transaction(async () => {
              throw new Error('inner');
            });
          }),
        ).rejects.toThrow('inner');
        expect(await store.users.findById(other.id)).toBeUndefined();
      });
    });

    describe('registration authority', () => {
      it('search finds users by case-insensitive prefix of name or email, or the start of the id, name matches first', async () => {
        const s = await freshStore();
        const tag = rid(4).toLowerCase().replace(/[^a-z]/g, 'q');
        const zoe = await s.users.insert(newUser({ display_name: `Zoë ${tag} Ångström`, email: `zoe.${tag}@example.org` }));
        const ada = await s.users.insert(newUser({ display_name: 'Ada Lovelace', email: `${tag}.ada@example.org` }));
        const grace = await s.users.insert(newUser({ display_name: 'Grace Hopper', email: 'grace@example.org', status: 'enrolled' }));
        const page = { offset: 0, limit: 10 };
        expect((await s.users.search({ ...page, query: 'ZOË' })).map((u) => u.id)).toEqual([zoe.id]);
        expect((await s.users.search({ ...page, query: `zoë ${tag.toUpperCase()} å` })).map((u) => u.id)).toEqual([zoe.id]);
        // "zoe.<tag>" is an email prefix; "<tag>." starts Ada's email.
        expect((await s.users.search({ ...page, query: `ZOE.${tag}` })).map((u) => u.id)).toEqual([zoe.id]);
        expect((await s.users.search({ ...page, query: `${tag}.` })).map((u) => u.id)).toEqual([ada.id]);
        expect((await s.users.search({ ...page, query: grace.id.slice(0, 6) })).map((u) => u.id)).toContain(grace.id);
        expect(await s.users.search({ ...page, query: 'nobody-has-this' })).toEqual([]);
        // Prefix, not substring: the middle of a name does not match.
        expect(await s.users.search({ ...page, query: 'lovelace' })).toEqual([]);
        // A name match and an email match of one person list them once, name matches first.
        const both = await s.users.insert(newUser({ display_name: 'Grace Brewster', email: `gr-${tag}@example.org` }));
        expect((await s.users.search({ ...page, query: 'gr' })).map((u) => u.id)).toEqual([both.id, grace.id]);
        expect((await s.users.search({ ...page, query: 'gr', status: 'enrolled' })).map((u) => u.id)).toEqual([grace.id]);
        expect((await s.users.search({ ...page, status: 'enrolled' })).map((u) => u.id)).toEqual([grace.id]);
      });

      it('search pages return one extra row when there is a next page, and pages do not overlap', async () => {
        const s = await freshStore();
        for (let i = 0; i < 7; i++) await s.users.insert(newUser({ display_name: `Page ${String(i).padStart(2, '0')}` }));
        const first = await s.users.search({ query: 'page', offset: 0, limit: 3 });
        expect(first.map((u) => u.display_name)).toEqual(['Page 00', 'Page 01', 'Page 02', 'Page 03']);
        const last = await s.users.search({ query: 'page', offset: 6, limit: 3 });
        expect(last.map((u) => u.display_name)).toEqual(['Page 06']);
      });

      it('search uses an index, not a table scan', async () => {
        const plan =
          target.name === 'sqlite'
            ? (await sql<{ detail: string }>`explain query plan select * from users where name_search >= 'ab' and name_search < 'ac' order by name_search, id limit 26`.execute(db.kysely)).rows
                .map((r) => r.detail)
                .join('\n')
            : // PostgreSQL plans by statistics; with few rows it may prefer a scan, so ask for the index when it is possible at all.
              (
                await db.kysely.transaction().execute(async (tx) => {
                  await sql`set local enable_seqscan = off`.execute(tx);
                  return sql<{ 'QUERY PLAN': string }>`explain select * from users where name_search collate "C" >= 'ab' and name_search collate "C" < 'ac' order by name_search collate "C", id limit 26`.execute(tx);
                })
              ).rows
                .map((r) => r['QUERY PLAN'])
                .join('\n');
        expect(plan).toMatch(/users_name_search/);
        expect(plan).not.toMatch(/SCAN users\b(?! USING)|Seq Scan/);
      });

      it('roles: set replaces the set, reports what changed, and counts per role', async () => {
        const s = await freshStore();
        const user = await s.users.insert(newUser());
        expect(await s.roles.set(user.id, ['ra_agent', 'auditor'], null, T0)).toEqual({ added: ['ra_agent', 'auditor'], removed: [] });
        expect(await s.roles.listForUser(user.id)).toEqual(['auditor', 'ra_agent']);
        expect(await s.roles.set(user.id, ['ra_manager', 'auditor'], null, T0)).toEqual({ added: ['ra_manager'], removed: ['ra_agent'] });
        expect(await s.roles.count('ra_manager')).toBe(1);
        expect(await s.roles.count('ra_agent')).toBe(0);
        await s.roles.set(user.id, [], null, T0);
        expect(await s.roles.listForUser(user.id)).toEqual([]);
      });

      it('email templates: the default cannot be deleted, others can', async () => {
        const s = await freshStore();
        const base = { subject: 'S {{name}}', body: 'B {{link}}', created_at: T0, updated_at: T0, updated_by: null };
        await s.emailTemplates.insert({ id: 'default', name: 'Default', is_default: 1, ...base });
        await s.emailTemplates.insert({ id: 'other', name: 'Other', is_default: 0, ...base });
        expect((await s.emailTemplates.list()).map((t) => t.id)).toEqual(['default', 'other']);
        expect(await s.emailTemplates.delete('default')).toBe(false);
        expect(await s.emailTemplates.delete('other')).toBe(true);
        expect(await s.emailTemplates.update('default', { name: 'Default', subject: 'New', body: '{{link}}' }, null, T0 + 1)).toBe(true);
        expect(await s.emailTemplates.findDefault()).toMatchObject({ subject: 'New', updated_at: T0 + 1 });
      });

      it('failed attempts are counted and burn the flow at the limit, even when concurrent', async () => {
        const user = await insertUser();
        const flow = newFlow({ user_id: user.id, type: 'enrol-code', expires_at: T0 + MINUTE });
        await store.flows.insert(flow);
        await Promise.all([1, 2, 3, 4, 5, 6, 7].map(() => store.flows.recordFailedAttempt(flow.id, 5, T0)));
        const after = await store.flows.findById(flow.id);
        expect(after!.state).toBe('revoked');
        expect(after!.failed_attempts).toBeGreaterThanOrEqual(5);
        expect(await store.flows.consume(flow.id, T0)).toBe(false);
      });

      it('revoke ends an active flow once; listForUser returns a user’s flows of some types, newest first', async () => {
        const user = await insertUser();
        const older = newFlow({ user_id: user.id, type: 'invite', created_at: T0 });
        const newer = newFlow({ user_id: user.id, type: 'enrol-code', created_at: T0 + 1 });
        const other = newFlow({ user_id: user.id, type: 'signin', created_at: T0 + 2 });
        for (const f of [older, newer, other]) await store.flows.insert(f);
        expect((await store.flows.listForUser(user.id, ['invite', 'enrol-code'])).map((f) => f.id)).toEqual([newer.id, older.id]);
        expect(await store.flows.revoke(older.id, T0)).toBe(true);
        expect(await store.flows.revoke(older.id, T0)).toBe(false);
        expect((await store.flows.findById(older.id))!.state).toBe('revoked');
      });

      it('sessions signed in with a passkey end when it is removed; others stay', async () => {
        const user = await insertUser();
        const passkey = newAuthenticator(user.id);
        await store.authenticators.insert(passkey);
        const withIt = newSession(user.id, { authenticator_id: passkey.id });
        const withOther = newSession(user.id, { authenticator_id: rid() });
        await store.sessions.insert(withIt);
        await store.sessions.insert(withOther);
        expect(await store.sessions.deleteForAuthenticator(user.id, passkey.id)).toBe(1);
        expect(await store.sessions.findByHash(withIt.id_hash)).toBeUndefined();
        expect(await store.sessions.findByHash(withOther.id_hash)).toBeDefined();
      });

      it('audit search filters by event, actor, subject and time, newest first, with names', async () => {
        const s = await freshStore();
        const agent = await s.users.insert(newUser({ display_name: 'Agent Smith' }));
        const user = await s.users.insert(newUser({ display_name: 'Neo' }));
        await s.audit.record({ event: 'enrolment.link_issued', outcome: 'success', actorUserId: agent.id, subjectUserId: user.id, at: T0 });
        await s.audit.record({ event: 'authenticator.removed', outcome: 'success', actorUserId: agent.id, subjectUserId: user.id, at: T0 + MINUTE });
        await s.audit.record({ event: 'signin', outcome: 'success', actorUserId: user.id, subjectUserId: user.id, at: T0 + 2 * MINUTE });
        const all = await s.audit.search({}, 10);
        expect(all.map((e) => e.event)).toEqual(['signin', 'authenticator.removed', 'enrolment.link_issued']);
        expect(all[1]).toMatchObject({ actor_name: 'Agent Smith', subject_name: 'Neo', actor_email: agent.email });
        expect((await s.audit.search({ actorUserId: agent.id }, 10)).map((e) => e.event)).toEqual(['authenticator.removed', 'enrolment.link_issued']);
        // Sign-ins are not in the by-actor index: they are found as the subject's own.
        expect((await s.audit.search({ actorUserId: user.id }, 10)).map((e) => e.event)).toEqual(['signin']);
        expect((await s.audit.search({ actorUserId: user.id, event: 'signin' }, 10)).map((e) => e.event)).toEqual(['signin']);
        expect(await s.audit.search({ actorUserId: agent.id, event: 'signin' }, 10)).toEqual([]);
        expect((await s.audit.search({ event: 'authenticator.removed' }, 10)).map((e) => e.actor_user_id)).toEqual([agent.id]);
        expect((await s.audit.listByEvent('signin')).map((e) => e.subject_user_id)).toEqual([user.id]);
        expect((await s.audit.search({ event: 'signin' }, 10))).toHaveLength(1);
        expect((await s.audit.search({ from: T0 + MINUTE, to: T0 + 2 * MINUTE }, 10)).map((e) => e.event)).toEqual(['authenticator.removed']);
        expect((await s.audit.search({ beforeId: all[0]!.id }, 1)).map((e) => e.event)).toEqual(['authenticator.removed']);
      });
    });

    it('deleting a user removes its authenticators, sessions and flows, and keeps the audit trail', async () => {
      const user = await insertUser();
      const keep = await insertUser();
      const passkey = newAuthenticator(user.id);
      const session = newSession(user.id);
      const flow = newFlow({ user_id: user.id });
      const keptPasskey = newAuthenticator(keep.id);
      await store.authenticators.insert(passkey);
      await store.authenticators.insert(keptPasskey);
      await store.sessions.insert(session);
      await store.flows.insert(flow);
      await store.audit.record({ event: 'signup', outcome: 'success', subjectUserId: user.id, at: T0 });

      await db.kysely.deleteFrom('users').where('id', '=', user.id).execute();

      expect(await store.users.findById(user.id)).toBeUndefined();
      expect(await store.authenticators.findByCredentialId(passkey.credential_id)).toBeUndefined();
      expect(await store.sessions.findByHash(session.id_hash)).toBeUndefined();
      expect(await store.flows.findById(flow.id)).toBeUndefined();
      expect(await store.audit.listForSubject(user.id)).toHaveLength(1);
      expect(await store.authenticators.findByCredentialId(keptPasskey.credential_id)).toBeDefined();
    });
  });
});
