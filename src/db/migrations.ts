/**
 * One migration set for SQLite and PostgreSQL. Column types are chosen to mean
 * the same on both: text, bigint (read back as number) and integer flags.
 */
import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from 'kysely';

export type Dialect = 'sqlite' | 'postgres';

const buildMigrations = (dialect: Dialect): Record<string, Migration> => ({
  '0001_core': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('users')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('email', 'text', (c) => c.notNull())
        .addColumn('email_normalized', 'text', (c) => c.notNull().unique())
        .addColumn('display_name', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('authenticators')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('credential_id', 'text', (c) => c.notNull().unique())
        .addColumn('public_key', 'text', (c) => c.notNull())
        .addColumn('counter', 'bigint', (c) => c.notNull())
        .addColumn('transports', 'text', (c) => c.notNull())
        .addColumn('aaguid', 'text', (c) => c.notNull())
        .addColumn('backup_eligible', 'integer', (c) => c.notNull())
        .addColumn('backed_up', 'integer', (c) => c.notNull())
        .addColumn('attestation_format', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_used_at', 'bigint')
        .execute();
      await db.schema.createIndex('authenticators_user_id').on('authenticators').column('user_id').execute();

      await db.schema
        .createTable('sessions')
        .addColumn('id_hash', 'text', (c) => c.primaryKey())
        .addColumn('public_id', 'text', (c) => c.notNull().unique())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
        .addColumn('authenticated_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('aal', 'integer', (c) => c.notNull())
        .addColumn('ip', 'text', (c) => c.notNull())
        .addColumn('user_agent', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('sessions_user_id').on('sessions').column('user_id').execute();

      await db.schema
        .createTable('flows')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('binding_hash', 'text')
        .addColumn('user_id', 'text', (c) => c.references('users.id').onDelete('cascade'))
        .addColumn('lookup', 'text', (c) => c.notNull().unique())
        .addColumn('data', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('consumed_at', 'bigint')
        .execute();
      await db.schema.createIndex('flows_expires_at').on('flows').column('expires_at').execute();

      await db.schema
        .createTable('audit_events')
        .addColumn('id', dialect === 'postgres' ? 'bigserial' : 'integer', (c) =>
          dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
        )
        .addColumn('at', 'bigint', (c) => c.notNull())
        .addColumn('event', 'text', (c) => c.notNull())
        .addColumn('outcome', 'text', (c) => c.notNull())
        .addColumn('actor_user_id', 'text')
        .addColumn('subject_user_id', 'text')
        .addColumn('authenticator_id', 'text')
        .addColumn('ip', 'text')
        .addColumn('user_agent', 'text')
        .addColumn('detail', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('audit_events_subject').on('audit_events').columns(['subject_user_id', 'at']).execute();

      await db.schema
        .createTable('settings')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .execute();
    },
  },
  /**
   * The registration-authority console (issue 3): roles, email templates, who
   * issued a passkey, which passkey a session signed in with, failed tries on
   * enrolment codes, and indexes for prefix search over a million users.
   */
  '0002_registration_authority': {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('users').addColumn('name_search', 'text', (c) => c.notNull().defaultTo('')).execute();
      await db.schema.alterTable('users').addColumn('national_id_hash', 'text').execute();
      await sql`update users set name_search = lower(display_name)`.execute(db);
      await sql`update users set status = 'suspended' where status = 'disabled'`.execute(db);
      // Prefix search is a range scan (>= prefix, < next prefix) over byte order: PostgreSQL needs the "C"
      // collation for that order (and for an index it can use); SQLite's default BINARY collation is it.
      const c = dialect === 'postgres' ? ' collate "C"' : '';
      await sql.raw(`create index users_name_search on users (name_search${c}, id)`).execute(db);
      await sql.raw(`create index users_status_name_search on users (status, name_search${c}, id)`).execute(db);
      if (dialect === 'postgres') {
        await sql.raw(`create index users_email_prefix on users (email_normalized collate "C")`).execute(db);
        await sql.raw(`create index users_id_prefix on users (id collate "C")`).execute(db);
      }

      await db.schema.alterTable('authenticators').addColumn('issued_by', 'text').execute();
      await db.schema.alterTable('sessions').addColumn('authenticator_id', 'text').execute();
      await db.schema.createIndex('sessions_authenticator_id').on('sessions').column('authenticator_id').execute();
      await db.schema.alterTable('flows').addColumn('failed_attempts', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.createIndex('flows_user_type').on('flows').columns(['user_id', 'type', 'created_at']).execute();
      await db.schema.createIndex('audit_events_actor').on('audit_events').columns(['actor_user_id', 'at']).execute();
      await db.schema.createIndex('audit_events_event').on('audit_events').columns(['event', 'at']).execute();

      await db.schema
        .createTable('roles')
        .addColumn('user_id', 'text', (col) => col.notNull().references('users.id').onDelete('cascade'))
        .addColumn('role', 'text', (col) => col.notNull())
        .addColumn('granted_by', 'text')
        .addColumn('granted_at', 'bigint', (col) => col.notNull())
        .addPrimaryKeyConstraint('roles_pk', ['user_id', 'role'])
        .execute();
      await db.schema.createIndex('roles_role').on('roles').column('role').execute();

      await db.schema
        .createTable('email_templates')
        .addColumn('id', 'text', (col) => col.primaryKey())
        .addColumn('name', 'text', (col) => col.notNull())
        .addColumn('subject', 'text', (col) => col.notNull())
        .addColumn('body', 'text', (col) => col.notNull())
        .addColumn('is_default', 'integer', (col) => col.notNull())
        .addColumn('created_at', 'bigint', (col) => col.notNull())
        .addColumn('updated_at', 'bigint', (col) => col.notNull())
        .addColumn('updated_by', 'text')
        .execute();
    },
  },
  /**
   * Self-service (issue 4): passwords for authenticator-app sign-in, the failed
   * sign-in count behind throttling, and fixed-window counters for rate limits
   * that must hold across instances (per account, per IP).
   */
  '0003_self_service': {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('users').addColumn('password_hash', 'text').execute();
      await db.schema.alterTable('users').addColumn('failed_signins', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('users').addColumn('last_failed_signin_at', 'bigint').execute();
      await db.schema
        .createTable('rate_counters')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('count', 'integer', (c) => c.notNull())
        .addColumn('window_start', 'bigint', (c) => c.notNull())
        .execute();
    },
  },
  /**
   * OpenID Connect provider (issue 5): oidc-provider's stored models (one table
   * for every kind, looked up by id, grant, uid or user code), the provider's
   * signing keys (private JWKs sealed with the secret box) and services, the
   * OpenID Connect clients that people sign in to.
   */
  '0004_oidc': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('oidc_models')
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('id', 'text', (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('grant_id', 'text')
        .addColumn('user_code', 'text')
        .addColumn('uid', 'text')
        .addColumn('expires_at', 'bigint')
        .addColumn('consumed_at', 'bigint')
        .addPrimaryKeyConstraint('oidc_models_pk', ['kind', 'id'])
        .execute();
      await db.schema.createIndex('oidc_models_grant_id').on('oidc_models').column('grant_id').execute();
      await db.schema.createIndex('oidc_models_uid').on('oidc_models').columns(['kind', 'uid']).execute();
      await db.schema.createIndex('oidc_models_user_code').on('oidc_models').columns(['kind', 'user_code']).execute();
      await db.schema.createIndex('oidc_models_expires_at').on('oidc_models').column('expires_at').execute();

      await db.schema
        .createTable('signing_keys')
        .addColumn('kid', 'text', (c) => c.primaryKey())
        .addColumn('alg', 'text', (c) => c.notNull())
        .addColumn('private_jwk', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('retires_at', 'bigint')
        .execute();

      await db.schema
        .createTable('services')
        .addColumn('client_id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('client_type', 'text', (c) => c.notNull())
        .addColumn('client_secret', 'text')
        .addColumn('redirect_uris', 'text', (c) => c.notNull())
        .addColumn('post_logout_redirect_uris', 'text', (c) => c.notNull())
        .addColumn('aal', 'integer', (c) => c.notNull())
        .addColumn('first_party', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
    },
  },
  /**
   * Fewer index writes per sign-in (BENCHMARKS.md): every sign-in inserts a
   * session and an audit record, and each index on a random key costs a page
   * write. Sessions lose the unique index on public_id (96 random bits, only
   * ever looked up with its user) and the index on authenticator_id (sessions
   * are ended per passkey through their user). The audit indexes by event and
   * by actor leave out sign-in records, the commonest event by far: a sign-in's
   * actor is its subject, found through audit_events_subject, and a page of
   * sign-ins fills from the newest records on (src/db/persisters/audit.ts).
   */
  '0005_hot_path_indexes': {
    async up(db: Kysely<any>) {
      await db.schema.dropIndex('sessions_authenticator_id').execute();
      if (dialect === 'postgres') {
        await sql`alter table sessions drop constraint sessions_public_id_key`.execute(db);
      } else {
        // SQLite can't drop a column's UNIQUE constraint: copy the table into one without it.
        await db.schema
          .createTable('sessions_new')
          .addColumn('id_hash', 'text', (c) => c.primaryKey())
          .addColumn('public_id', 'text', (c) => c.notNull())
          .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
          .addColumn('authenticated_at', 'bigint', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .addColumn('aal', 'integer', (c) => c.notNull())
          .addColumn('ip', 'text', (c) => c.notNull())
          .addColumn('user_agent', 'text', (c) => c.notNull())
          .addColumn('authenticator_id', 'text')
          .execute();
        await sql`insert into sessions_new (id_hash, public_id, user_id, created_at, last_seen_at, authenticated_at, expires_at, aal, ip, user_agent, authenticator_id)
          select id_hash, public_id, user_id, created_at, last_seen_at, authenticated_at, expires_at, aal, ip, user_agent, authenticator_id from sessions`.execute(db);
        await db.schema.dropTable('sessions').execute();
        await db.schema.alterTable('sessions_new').renameTo('sessions').execute();
        await db.schema.createIndex('sessions_user_id').on('sessions').column('user_id').execute();
      }
      await db.schema.dropIndex('audit_events_actor').execute();
      await db.schema.dropIndex('audit_events_event').execute();
      await sql.raw(`create index audit_events_actor on audit_events (actor_user_id, at) where event <> '${UNINDEXED_AUDIT_EVENT}'`).execute(db);
      await sql.raw(`create index audit_events_event on audit_events (event, at) where event <> '${UNINDEXED_AUDIT_EVENT}'`).execute(db);
    },
  },
  /**
   * Failed password sign-ins at addresses without an account, counted like an
   * account's so six wrong passwords don't tell whether an address has one
   * (src/strategies/throttle.ts). No index on the time: a failure writes one
   * row, and only the maintenance job's prune reads by time.
   */
  '0006_signin_failures': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('signin_failures')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('failed_signins', 'integer', (c) => c.notNull())
        .addColumn('last_failed_signin_at', 'bigint', (c) => c.notNull())
        .execute();
    },
  },
  /**
   * Each kind of authenticator keeps its own data in `config` (JSON) instead of
   * reusing the passkey columns with other meanings: an app's sealed secret and
   * last step were in public_key and counter, a linked account's provider in
   * aaguid. Existing rows are moved by this migration.
   */
  '0007_authenticator_config': {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('authenticators').addColumn('config', 'text', (c) => c.notNull().defaultTo('{}')).execute();
      const rows = await db.selectFrom('authenticators').select(['id', 'type', 'public_key', 'counter', 'aaguid']).where('type', 'in', ['totp', 'linked-account']).execute();
      for (const row of rows as { id: string; type: string; public_key: string; counter: number | string; aaguid: string }[]) {
        const config = row.type === 'totp' ? { sealedSecret: row.public_key, lastStep: Number(row.counter) } : { provider: row.aaguid };
        await db
          .updateTable('authenticators')
          .set({ config: JSON.stringify(config), public_key: '', counter: 0, aaguid: '' })
          .where('id', '=', row.id)
          .execute();
      }
    },
  },
  /**
   * The FIDO metadata BLOB Latchkey trusts (issue 13): the last one whose
   * signature chain verified, kept whole so every instance reads the same
   * entries and a restart needs no network. One row, replaced by a newer
   * serial (src/webauthn/metadata/metadataStore.ts).
   */
  '0008_fido_metadata': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('fido_metadata')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('serial', 'integer', (c) => c.notNull())
        .addColumn('next_update', 'text', (c) => c.notNull())
        .addColumn('entries', 'integer', (c) => c.notNull())
        .addColumn('blob', 'text', (c) => c.notNull())
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('imported_at', 'bigint', (c) => c.notNull())
        .execute();
    },
  },
  /**
   * When a person last chose "Not now" on "Set up a passkey" after signing in
   * without one (src/flows/passkeyUpgrade): they are asked again only after
   * LATCHKEY_PASSKEY_PROMPT_DAYS. Null: never skipped.
   */
  '0009_passkey_prompt': {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('users').addColumn('passkey_prompt_skipped_at', 'bigint').execute();
    },
  },
  /**
   * Admin API and SCIM bearer tokens (src/api/apiTokens.ts): only the SHA-256 of a token is kept; each acts with one
   * console role. Audit records name the token that acted (actor_token_id) where a person would be the actor.
   */
  '0010_api_tokens': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('api_tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_by', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint')
        .addColumn('last_used_at', 'bigint')
        .execute();
      await db.schema.alterTable('audit_events').addColumn('actor_token_id', 'text').execute();
      // The audit log's "By" filter finds a token's actions (src/admin/routes/audit.tsx) with an index search, as it
      // finds a person's. Partial: most events have no token, and they cost this index nothing.
      await sql`create index audit_events_actor_token on audit_events (actor_token_id, at) where actor_token_id is not null`.execute(db);
    },
  },
  /**
   * Webhooks (issue 15): endpoints an RA Manager registers, and the outbox of
   * deliveries written in the same transaction as the change they report
   * (src/webhooks). A delivery's id is its Standard Webhooks message id.
   */
  '0011_webhooks': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('webhook_endpoints')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('events', 'text', (c) => c.notNull())
        .addColumn('secret', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.references('users.id').onDelete('set null'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('paused_at', 'bigint')
        .addColumn('consecutive_failures', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema
        .createTable('webhook_deliveries')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('endpoint_id', 'text', (c) => c.notNull().references('webhook_endpoints.id').onDelete('cascade'))
        .addColumn('event_type', 'text', (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('next_attempt_at', 'bigint', (c) => c.notNull())
        .addColumn('claimed_until', 'bigint')
        .addColumn('last_attempt_at', 'bigint')
        .addColumn('response_status', 'integer')
        .addColumn('response_body', 'text')
        .addColumn('error', 'text')
        .addColumn('delivered_at', 'bigint')
        .execute();
      await db.schema.createIndex('webhook_deliveries_due').on('webhook_deliveries').columns(['status', 'next_attempt_at']).execute();
      await db.schema.createIndex('webhook_deliveries_endpoint').on('webhook_deliveries').columns(['endpoint_id', 'created_at']).execute();
    },
  },
  /**
   * Bulk imports of users started in the console (src/users/import): the check, then the job's progress and report,
   * kept here so the progress page works after a reload and from any instance. `plan` holds the validated rows
   * (national identifiers already HMACed) only until the job has written them.
   */
  '0012_user_imports': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('user_imports')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('created_by', 'text')
        .addColumn('file_name', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('options', 'text', (c) => c.notNull())
        .addColumn('rows', 'integer', (c) => c.notNull())
        .addColumn('to_create', 'integer', (c) => c.notNull())
        .addColumn('done', 'integer', (c) => c.notNull())
        .addColumn('created', 'integer', (c) => c.notNull())
        .addColumn('skipped', 'integer', (c) => c.notNull())
        .addColumn('refused', 'integer', (c) => c.notNull())
        .addColumn('plan', 'text')
        .addColumn('report', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('finished_at', 'bigint')
        .execute();
    },
  },
  /**
   * SCIM provisioning (src/scim): the identity provider's own id for each person it provisioned (SCIM `externalId`),
   * which Entra ID and Okta match on (`filter=externalId eq "…"`). Not unique: two providers may use the same value.
   */
  '0013_scim': {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('users').addColumn('scim_external_id', 'text').execute();
      await db.schema.createIndex('users_scim_external_id').on('users').column('scim_external_id').execute();
    },
  },
  /**
   * The algorithm each service's ID tokens are signed with (src/oidc/signingKeys.ts): services that exist keep RS256,
   * which their relying parties may have pinned; addService gives new ones ES256.
   */
  '0014_service_id_token_alg': {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('services').addColumn('id_token_alg', 'text', (c) => c.notNull().defaultTo('RS256')).execute();
    },
  },
  /**
   * WebAuthn challenges of the `database` challenge store get a table of their own (src/db/persisters/challenges.ts):
   * one index and no foreign key for the row every sign-in writes, where a flow's row has four indexes and a check of
   * its user. Ceremonies begun before the upgrade start again (their flows are deleted by maintenance as before); with
   * several instances, a ceremony whose options and verify reach an old and a new one fails until all are upgraded.
   */
  '0015_challenges': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('challenges')
        .addColumn('lookup', 'text', (c) => c.primaryKey())
        .addColumn('id', 'text', (c) => c.notNull())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('binding_hash', 'text')
        .addColumn('user_id', 'text')
        .addColumn('data', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();
    },
  },
});

/**
 * The audit event left out of the by-event and by-actor indexes (migration
 * 0005): sign-ins. Queries on those indexes repeat `event <> 'signin'` so
 * both databases can use them.
 */
export const UNINDEXED_AUDIT_EVENT = 'signin';

/** Apply every pending migration (or those up to and including `upTo`, for tests); throws with the failing migration's name. */
export async function migrateToLatest(db: Kysely<any>, dialect: Dialect, upTo?: string): Promise<string[]> {
  const provider: MigrationProvider = { getMigrations: async () => buildMigrations(dialect) };
  // Kysely looks for its bookkeeping tables in every schema unless told which one: with a
  // kysely_migration table in any other schema of the database it would skip creating its
  // own and then fail (or apply nothing). Keep them beside the tables they describe.
  const migrationTableSchema = dialect === 'postgres' ? await currentSchema(db) : undefined;
  const migrator = new Migrator({ db, provider, migrationTableSchema });
  const { error, results } = upTo ? await migrator.migrateTo(upTo) : await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`migration ${failed} failed: ${error instanceof Error ? error.message : String(error)}`);
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/** The first existing schema on the connection's search_path: where unqualified CREATE TABLE lands. */
async function currentSchema(db: Kysely<any>): Promise<string | undefined> {
  const { rows } = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(db);
  return rows[0]?.schema ?? undefined;
}
