/**
 * What a kind of authenticator is: one interface that each kind implements in
 * its own folder (`strategies/<kind>/kind.ts`) and one registry
 * (kindRegistry.ts) that every page, flow and the ID token loop over. A new
 * kind is a folder and a line in defaultKinds.ts — nothing else changes.
 *
 * A kind declares:
 * - its `type` (the `authenticators.type` value) and the TypeBox schema of its
 *   stored configuration (`authenticators.config`, JSON). The passkey columns
 *   (public_key, counter, transports, aaguid, backup flags) belong to the
 *   passkey kind alone; every other kind keeps what it needs in `config`;
 * - its assurance: the AAL, phishing resistance and RFC 8176 `amr` of a sign-in
 *   with it (the one place this is worked out for that kind);
 * - how people and agents see it (label, provider, badges), in settings and in
 *   the registration authority console;
 * - how it is added: a choice on self-service's "Select authenticator type"
 *   page, and whether an agent may issue it;
 * - whether it can confirm it is the person again (step-up), what removing it
 *   does, and the words for its audit events.
 * - its own routes (sign-in, step-up, enrolment pages), registered by the app.
 */
import type { FastifyInstance } from 'fastify';
import type { JSX } from 'preact';
import type { Static, TSchema } from 'typebox';
import { Compile, type Validator } from 'typebox/compile';
import type { Config } from '../config/index.js';
import type { Authenticator, User } from '../db/schema.js';
import type { Store } from '../db/store.js';
import type { Trust } from '../webauthn/trust.js';

export type Aal = 1 | 2 | 3;

export interface Assurance {
  aal: Aal;
  phishingResistant: boolean;
  /** RFC 8176 Authentication Method Reference values. */
  amr: string[];
}

/** What a kind may read to work out assurance and labels: the person (a password, for an app) and the configuration. */
export interface KindContext {
  config: Pick<Config, 'upstreamProviders' | 'rpName' | 'passwordSignIn'>;
  user: Pick<User, 'password_hash'>;
  /** The FIDO metadata and authenticator policy in force: what a passkey's attestation is worth now. */
  trust: Trust;
}

/**
 * Whether a kind can confirm it is the person again at /settings/reauth:
 * `primary` kinds are always offered; `fallback` kinds only to someone who has
 * no primary one (a linked work account proves what the sign-in that made the
 * session proved, and no more).
 */
export type StepUp = 'primary' | 'fallback' | 'none';

/** How an authenticator shows in a list (settings, console). */
export interface KindDisplay {
  /** The kind in words, capitalised: "Passkey", "Authenticator app", "NHS.net Connect account". */
  label: string;
  /** Where it lives (a passkey's provider), when the kind knows. */
  provider?: JSX.Element | null;
  /** Short facts in badges ("Synced", "This device only"). */
  badges?: JSX.Element | null;
}

/** One option on self-service's "Select authenticator type" page. */
export interface SelfServiceChoice {
  /** The radio's value; unique across kinds. */
  value: string;
  label: string;
  /** What was added, for sentences: "passkey", "authenticator app", "NHS.net Connect account". */
  what: string;
  hint: string;
  /** Where choosing it leads, inside the self-service flow. */
  path: (flowId: string) => string;
}

/** One option on the console's "Select authenticator type" page. */
export interface AgentIssueChoice {
  /** The radio's value; unique across kinds. */
  value: string;
  label: string;
  hint: string;
  /** The page that issues it. */
  path: (userId: string) => string;
}

export interface AuthenticatorKind<S extends TSchema = TSchema> {
  /** `authenticators.type`. */
  readonly type: string;
  /** The schema of `authenticators.config` for this kind. */
  readonly config: S;
  /** For sentences: "passkey", "authenticator app". */
  readonly noun: string;
  /**
   * What a sign-in with this authenticator is worth; undefined when it can't sign anyone in on its own (an app
   * without a password).
   */
  assurance(authenticator: Authenticator, config: Static<S>, ctx: KindContext): Assurance | undefined;
  readonly stepUp: StepUp;
  display(authenticator: Authenticator, config: Static<S>, ctx: KindContext): KindDisplay;
  /** Settings lists passkeys in their own table (rename, sync); every other kind in "Authenticator apps and work accounts". */
  readonly settingsSection: 'passkeys' | 'others';
  /** A sentence added to "Are you sure you want to remove …?" in settings. */
  removeWarning?: string;
  /** Options this kind offers on the self-service choice page (none: not added that way). */
  selfServiceChoices?(config: Config): SelfServiceChoice[];
  /** What a registration authority agent may issue of this kind (the console's "Select authenticator type" page); none: agents can't. */
  readonly agentIssue?: readonly AgentIssueChoice[];
  /**
   * It signs in with the person's one password (users.password_hash), as an authenticator app and a password alone
   * do: the password goes when the last authenticator of such a kind does (KindRegistry.removed), and not before.
   */
  readonly usesPassword?: boolean;
  /** Runs in the removal's transaction after the row is gone. */
  onRemoved?(tx: Store, user: User, authenticator: Authenticator, now: number): Promise<void>;
  /** Words people read in activity lists, for this kind's own audit events. */
  readonly auditEvents?: Record<string, string>;
  /** The kind's own endpoints; registered by buildApp after the shared plugins. */
  routes?(app: FastifyInstance): Promise<void>;
}

/** A kind of any configuration schema, as the registry holds them. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyKind = AuthenticatorKind<any>;

/** Declares a kind with its configuration type checked against its schema. */
export function defineKind<S extends TSchema>(kind: AuthenticatorKind<S>): AuthenticatorKind<S> {
  return kind;
}

/** The passkey columns as every other kind leaves them: spread into a new row of a kind that keeps its data in `config`. */
export const NO_PASSKEY_COLUMNS = { public_key: '', counter: 0, transports: '[]', aaguid: '', backup_eligible: 0, backed_up: 0, attestation_format: 'none' } as const;

/** Each kind's schema compiled once: configuration is read on the sign-in path. */
const validators = new WeakMap<TSchema, Validator>();

/** An authenticator's configuration read with its own kind's schema; undefined when the row is another kind's or doesn't match. */
export function readKindConfig<S extends TSchema>(kind: AuthenticatorKind<S>, authenticator: Pick<Authenticator, 'type' | 'config'>): Static<S> | undefined {
  if (authenticator.type !== kind.type) return undefined;
  let validator = validators.get(kind.config);
  if (!validator) validators.set(kind.config, (validator = Compile(kind.config) as unknown as Validator));
  let parsed: unknown;
  try {
    parsed = JSON.parse(authenticator.config);
  } catch {
    return undefined;
  }
  return validator.Check(parsed) ? (parsed as Static<S>) : undefined;
}
