/**
 * Kysely table types. Times are milliseconds since the epoch (bigint columns,
 * read back as numbers on both SQLite and PostgreSQL); booleans are 0/1 integers
 * so the same queries run unchanged on both databases.
 */
import type { Generated, Insertable, Selectable, Updateable } from 'kysely';

export type UserStatus = 'pending' | 'enrolled' | 'disabled';

export interface UsersTable {
  id: string;
  email: string;
  email_normalized: string;
  display_name: string;
  status: UserStatus;
  created_at: number;
  updated_at: number;
}

export interface AuthenticatorsTable {
  id: string;
  user_id: string;
  /** 'passkey' for now; later issues add 'totp' and 'linked-account'. */
  type: string;
  credential_id: string;
  /** COSE public key, base64url. */
  public_key: string;
  counter: number;
  /** JSON array of AuthenticatorTransport. */
  transports: string;
  aaguid: string;
  backup_eligible: number;
  backed_up: number;
  attestation_format: string;
  name: string;
  created_at: number;
  last_used_at: number | null;
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
}

export type FlowState = 'active' | 'consumed' | 'revoked';

/**
 * Flows are stored records of multi-step interactions (invites, WebAuthn
 * ceremonies): single-use, expiring, bound to the browser that started them.
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
}

export interface AuditEventsTable {
  id: Generated<number>;
  at: number;
  event: string;
  outcome: 'success' | 'failure';
  actor_user_id: string | null;
  subject_user_id: string | null;
  authenticator_id: string | null;
  ip: string | null;
  user_agent: string | null;
  detail: string;
}

export interface SettingsTable {
  key: string;
  value: string;
}

export interface Database {
  users: UsersTable;
  authenticators: AuthenticatorsTable;
  sessions: SessionsTable;
  flows: FlowsTable;
  audit_events: AuditEventsTable;
  settings: SettingsTable;
}

export type User = Selectable<UsersTable>;
export type NewUser = Insertable<UsersTable>;
export type UserUpdate = Updateable<UsersTable>;
export type Authenticator = Selectable<AuthenticatorsTable>;
export type NewAuthenticator = Insertable<AuthenticatorsTable>;
export type Session = Selectable<SessionsTable>;
export type Flow = Selectable<FlowsTable>;
export type AuditEvent = Selectable<AuditEventsTable>;
