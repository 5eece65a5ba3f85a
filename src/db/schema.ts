/**
 * Kysely table types. Times are milliseconds since the epoch (bigint columns,
 * read back as numbers on both SQLite and PostgreSQL); booleans are 0/1 integers
 * so the same queries run unchanged on both databases.
 */
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

/** Pending until a first passkey is registered (seed 003), Enrolled after; Suspended users cannot sign in. */
export type UserStatus = 'pending' | 'enrolled' | 'suspended';

export interface UsersTable {
  id: string;
  email: string;
  email_normalized: string;
  display_name: string;
  status: UserStatus;
  created_at: number;
  updated_at: number;
  /** Lower-cased display name for prefix search; the users persister keeps it in step with display_name. */
  name_search: ColumnType<string, string | undefined, string>;
  /** HMAC of the normalised national identifier (never the identifier itself); null when none was recorded. */
  national_id_hash: ColumnType<string | null, string | null | undefined, string | null>;
  /** argon2id hash of the password used with an authenticator app; null for passkey-only accounts. */
  password_hash: ColumnType<string | null, string | null | undefined, string | null>;
  /** Consecutive failed sign-ins across methods (NIST SP 800-63B: at most 100); a success resets it. */
  failed_signins: ColumnType<number, number | undefined, number>;
  last_failed_signin_at: ColumnType<number | null, number | null | undefined, number | null>;
  /** When the person last chose "Not now" on "Set up a passkey" (migration 0009); null: never. */
  passkey_prompt_skipped_at: ColumnType<number | null, number | null | undefined, number | null>;
  /** The identity provider's own id for the person, as its SCIM client sent it (migration 0013); null: none. */
  scim_external_id: ColumnType<string | null, string | null | undefined, string | null>;
}

/**
 * Every kind of authenticator (src/strategies/authenticatorKind.ts) is a row here. `type` names the kind and
 * `config` holds the kind's own data as JSON, checked against the kind's schema (KindRegistry.configOf). The
 * passkey columns — public_key, counter, transports, aaguid, backup flags, attestation_format — belong to the
 * passkey kind, which reads them on the sign-in path; other kinds leave them empty ('', 0, '[]').
 */
export interface AuthenticatorsTable {
  id: string;
  user_id: string;
  /** The kind: 'passkey', 'totp', 'linked-account' … */
  type: string;
  /** Unique across kinds: a passkey's credential id, `<issuer>#<subject>` for a linked account, `totp:<id>` for an app. */
  credential_id: string;
  /** Passkey: COSE public key, base64url. */
  public_key: string;
  /** Passkey: the signature counter. */
  counter: number;
  /** Passkey: JSON array of AuthenticatorTransport. */
  transports: string;
  /** Passkey: the AAGUID of the authenticator that made it. */
  aaguid: string;
  backup_eligible: number;
  backed_up: number;
  attestation_format: string;
  /** The kind's own configuration, JSON (migration 0007); '{}' for passkeys. */
  config: ColumnType<string, string | undefined, string>;
  name: string;
  created_at: number;
  last_used_at: number | null;
  /** The agent who issued the link or code this passkey was registered with; null when the person added it themselves. */
  issued_by: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface SessionsTable {
  /** SHA-256 of the session token, base64url: the token itself is never stored. */
  id_hash: string;
  /** Short public id used to list and end sessions. */
  public_id: string;
  user_id: string;
  created_at: number;
  last_seen_at: number;
  /** Time of the last passkey check (sign-in or step-up). */
  authenticated_at: number;
  expires_at: number;
  aal: number;
  ip: string;
  user_agent: string;
  /** The passkey this session signed in with: removing it ends the session. */
  authenticator_id: ColumnType<string | null, string | null | undefined, string | null>;
}

export type FlowState = 'active' | 'consumed' | 'revoked';

/** A WebAuthn challenge of the `database` challenge store (src/db/persisters/challenges.ts), deleted when used. */
export interface ChallengesTable {
  /** The challenge (base64url). */
  lookup: string;
  /** The ceremony's flow id (the stores hand ceremonies a flow). */
  id: string;
  type: string;
  /** Hash of the browser binding that may answer it. */
  binding_hash: string | null;
  user_id: string | null;
  data: string;
  created_at: number;
  expires_at: number;
}

/**
 * Flows are stored records of multi-step interactions (invite links and codes, self-service checks, a linked account's
 * sign-in): single-use, expiring, bound to the browser that started them.
 */
export interface FlowsTable {
  id: string;
  type: string;
  state: FlowState;
  /** Hash of the browser binding (session or pre-session cookie) that may use this flow. */
  binding_hash: string | null;
  user_id: string | null;
  /** WebAuthn challenge (base64url) or hashed link token; unique. */
  lookup: string;
  data: string;
  created_at: number;
  expires_at: number;
  consumed_at: number | null;
  /** Wrong guesses against this flow (enrolment codes burn after 5). */
  failed_attempts: ColumnType<number, number | undefined, number>;
}

export interface AuditEventsTable {
  id: Generated<number>;
  at: number;
  event: string;
  outcome: 'success' | 'failure' | 'refused';
  actor_user_id: string | null;
  /** The admin API or SCIM token that acted (src/api/apiTokens.ts), when no person did. */
  actor_token_id: string | null;
  subject_user_id: string | null;
  authenticator_id: string | null;
  ip: string | null;
  user_agent: string | null;
  detail: string;
}

export type Role = 'ra_manager' | 'ra_agent_advanced' | 'ra_agent' | 'auditor';

/** A bearer token for the admin API and SCIM: it acts with one console role until it expires or is revoked. */
export interface ApiTokensTable {
  id: string;
  name: string;
  role: Role;
  /** SHA-256 of the token (src/crypto.ts hashToken); the token itself is shown once and never stored. */
  token_hash: string;
  created_by: string | null;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
  last_used_at: number | null;
}

export interface RolesTable {
  user_id: string;
  role: Role;
  granted_by: string | null;
  granted_at: number;
}

export interface EmailTemplatesTable {
  id: string;
  name: string;
  subject: string;
  body: string;
  /** 1 for the built-in default: it can be edited but not deleted. */
  is_default: number;
  created_at: number;
  updated_at: number;
  updated_by: string | null;
}

/** A fixed-window counter (rate limits shared by every instance). */
export interface RateCountersTable {
  key: string;
  count: number;
  window_start: number;
}

/**
 * Consecutive failed password sign-ins at an address that has no account, so it is throttled and locked exactly as
 * an account is (src/strategies/throttle.ts). Keyed by an HMAC of the normalised address under the server secret,
 * never the address; forgotten a while after the last failure.
 */
export interface SigninFailuresTable {
  key: string;
  failed_signins: number;
  last_failed_signin_at: number;
}

/** oidc-provider's stored models (sessions, interactions, grants, codes, tokens …), one row per model. */
export interface OidcModelsTable {
  /** The model name oidc-provider gives the adapter: Session, Interaction, Grant, AuthorizationCode, RefreshToken … */
  kind: string;
  id: string;
  /** The model as JSON, as oidc-provider gave it. */
  payload: string;
  grant_id: string | null;
  user_code: string | null;
  uid: string | null;
  /** Milliseconds since the epoch; null: no expiry. */
  expires_at: number | null;
  consumed_at: number | null;
}

/** The provider's signing keys: the newest unretired key signs; retired keys stay published until retires_at. */
export interface SigningKeysTable {
  kid: string;
  alg: string;
  /** The private JWK as JSON, sealed with the secret box (context `signing-key:<kid>`). */
  private_jwk: string;
  created_at: number;
  /** null: current; otherwise the key stopped signing and leaves the JWKS at this time. */
  retires_at: number | null;
}

export type ServiceClientType = 'public' | 'confidential';

/** A service: an OpenID Connect client (relying party) people sign in to with Latchkey. */
export interface ServicesTable {
  client_id: string;
  name: string;
  client_type: ServiceClientType;
  /** Confidential clients: the secret sealed with the secret box (oidc-provider compares the plaintext). */
  client_secret: string | null;
  /** JSON array of exact redirect URIs. */
  redirect_uris: string;
  /** JSON array of URIs allowed after RP-initiated logout. */
  post_logout_redirect_uris: string;
  /** The assurance level a sign-in must reach before this service receives a token (1, 2 or 3). */
  aal: number;
  /** 1: operated by the same organisation; no consent page. */
  first_party: number;
  created_at: number;
  /** The JWS algorithm of this service's ID tokens (signingKeys.ts SIGNING_ALGS); RS256 for services older than ES256. */
  id_token_alg: ColumnType<string, string | undefined, string>;
}

export interface SettingsTable {
  key: string;
  value: string;
}

/** The FIDO metadata BLOB in use (migration 0008): one row, id 'current'. */
export interface FidoMetadataTable {
  id: string;
  /** The BLOB's `no`. */
  serial: number;
  /** The BLOB's `nextUpdate`, YYYY-MM-DD. */
  next_update: string;
  /** FIDO2 entries (with an AAGUID and a statement). */
  entries: number;
  /** The BLOB as downloaded: a JWT whose x5c chain verified to the FIDO root. */
  blob: string;
  /** Where it came from: a file path or the URL. */
  source: string;
  imported_at: number;
}

export type WebhookEndpointStatus = 'active' | 'paused';

/** Where webhooks go (migration 0011): an RA Manager registers it and chooses its events. */
export interface WebhookEndpointsTable {
  id: string;
  /** https (http only to localhost in development): src/webhooks/endpointUrl.ts. */
  url: string;
  description: string;
  /** JSON array of webhook event types (src/webhooks/events.ts). */
  events: string;
  /** The Standard Webhooks secret (`whsec_…`), sealed with the secret box (context `webhook-secret:<id>`). */
  secret: string;
  /** paused: nothing is sent; deliveries wait until it is resumed. */
  status: WebhookEndpointStatus;
  /** The RA Manager who added it: told by email when it is paused for failing. Null once their account is gone. */
  created_by: string | null;
  created_at: number;
  updated_at: number;
  paused_at: number | null;
  /** Failed attempts since the last success, across its deliveries. */
  consecutive_failures: ColumnType<number, number | undefined, number>;
}

export type WebhookDeliveryStatus = 'pending' | 'delivered' | 'failed';

/** The outbox: one row per event per endpoint, written in the transaction of the change it reports. */
export interface WebhookDeliveriesTable {
  /** The Standard Webhooks message id (`msg_…`): the `webhook-id` header of every attempt. */
  id: string;
  endpoint_id: string;
  event_type: string;
  /** The JSON body sent, as sent: `{ type, timestamp, data }`. */
  payload: string;
  created_at: number;
  status: WebhookDeliveryStatus;
  attempts: ColumnType<number, number | undefined, number>;
  next_attempt_at: number;
  /** An instance sending it holds it until then, so two never send it at once; null when no one does. */
  claimed_until: ColumnType<number | null, number | null | undefined, number | null>;
  last_attempt_at: ColumnType<number | null, number | null | undefined, number | null>;
  response_status: ColumnType<number | null, number | null | undefined, number | null>;
  /** The first 2 KB of the receiver's last answer. */
  response_body: ColumnType<string | null, string | null | undefined, string | null>;
  /** Why the last attempt failed without an answer (timeout, refused connection, redirect). */
  error: ColumnType<string | null, string | null | undefined, string | null>;
  delivered_at: ColumnType<number | null, number | null | undefined, number | null>;
}

/**
 * `checked`: validated, waiting for the agent to confirm; `running`: being written; `done`; `failed` (an error
 * stopped it: what was written before stays, the report says how far it got).
 */
export type UserImportState = 'checked' | 'running' | 'done' | 'failed';

/** A bulk import of users from the console (migration 0012; src/users/import/importJobs.ts). */
export interface UserImportsTable {
  id: string;
  /** The agent who uploaded the file. */
  created_by: string | null;
  file_name: string;
  state: UserImportState;
  /** JSON: what the agent chose (ImportJobOptions). */
  options: string;
  /** Data rows in the file. */
  rows: number;
  /** Valid new users the job will write (or wrote). */
  to_create: number;
  /** Of to_create, how many have been written or found taken so far (the progress bar). */
  done: number;
  created: number;
  skipped: number;
  /** Refused lines. */
  refused: number;
  /** JSON: the validated rows still to write; null once written. */
  plan: string | null;
  /** JSON: the lines refused and skipped, and mails that failed (ImportReport). */
  report: string;
  created_at: number;
  updated_at: number;
  finished_at: number | null;
}

export interface Database {
  webhook_endpoints: WebhookEndpointsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  fido_metadata: FidoMetadataTable;
  users: UsersTable;
  authenticators: AuthenticatorsTable;
  sessions: SessionsTable;
  flows: FlowsTable;
  challenges: ChallengesTable;
  audit_events: AuditEventsTable;
  settings: SettingsTable;
  roles: RolesTable;
  email_templates: EmailTemplatesTable;
  rate_counters: RateCountersTable;
  signin_failures: SigninFailuresTable;
  oidc_models: OidcModelsTable;
  signing_keys: SigningKeysTable;
  services: ServicesTable;
  api_tokens: ApiTokensTable;
  user_imports: UserImportsTable;
}

export type User = Selectable<UsersTable>;
export type NewUser = Insertable<UsersTable>;
export type UserUpdate = Updateable<UsersTable>;
export type Authenticator = Selectable<AuthenticatorsTable>;
export type NewAuthenticator = Insertable<AuthenticatorsTable>;
export type Session = Selectable<SessionsTable>;
export type Flow = Selectable<FlowsTable>;
export type Challenge = Selectable<ChallengesTable>;
export type AuditEvent = Selectable<AuditEventsTable>;
export type EmailTemplate = Selectable<EmailTemplatesTable>;
export type OidcModel = Selectable<OidcModelsTable>;
export type SigningKey = Selectable<SigningKeysTable>;
export type Service = Selectable<ServicesTable>;
export type ApiToken = Selectable<ApiTokensTable>;
export type FidoMetadataRow = Selectable<FidoMetadataTable>;
export type WebhookEndpoint = Selectable<WebhookEndpointsTable>;
export type WebhookDelivery = Selectable<WebhookDeliveriesTable>;
export type UserImport = Selectable<UserImportsTable>;
