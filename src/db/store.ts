/**
 * The persisters over one Kysely handle. `transaction()` hands the callback a
 * Store whose persisters all write in that transaction, so a multi-table change
 * (user + passkey + consumed invite + audit) lands whole or not at all.
 */
import type { Kysely } from 'kysely';
import type { Db } from './connect.js';
import type { Database } from './schema.js';
import { AuditPersister } from './persisters/audit.js';
import { AuthenticatorPersister } from './persisters/authenticators.js';
import { FlowPersister } from './persisters/flows.js';
import { ChallengePersister } from './persisters/challenges.js';
import { SessionPersister } from './persisters/sessions.js';
import { SettingsPersister } from './persisters/settings.js';
import { FidoMetadataPersister } from './persisters/fidoMetadata.js';
import { UserPersister } from './persisters/users.js';
import { RolePersister } from './persisters/roles.js';
import { EmailTemplatePersister } from './persisters/emailTemplates.js';
import { RateCounterPersister } from './persisters/rateCounters.js';
import { SigninFailurePersister } from './persisters/signinFailures.js';
import { OidcModelPersister } from './persisters/oidcModels.js';
import { SigningKeyPersister } from './persisters/signingKeys.js';
import { ServicePersister } from './persisters/services.js';
import { ApiTokenPersister } from './persisters/apiTokens.js';
import { WebhookPersister } from './persisters/webhooks.js';
import { UserImportPersister } from './persisters/userImports.js';
import { GroupCommit } from './groupCommit.js';

export class Store {
  readonly users: UserPersister;
  readonly authenticators: AuthenticatorPersister;
  readonly sessions: SessionPersister;
  readonly flows: FlowPersister;
  readonly challenges: ChallengePersister;
  readonly audit: AuditPersister;
  readonly settings: SettingsPersister;
  readonly fidoMetadata: FidoMetadataPersister;
  readonly roles: RolePersister;
  readonly emailTemplates: EmailTemplatePersister;
  readonly rateCounters: RateCounterPersister;
  readonly signinFailures: SigninFailurePersister;
  readonly oidcModels: OidcModelPersister;
  readonly signingKeys: SigningKeyPersister;
  readonly services: ServicePersister;
  readonly apiTokens: ApiTokenPersister;
  readonly webhooks: WebhookPersister;
  readonly userImports: UserImportPersister;

  private readonly inTransaction: boolean;
  private readonly groupCommit: GroupCommit | undefined;
  /** In a transaction: what to run once it has committed. */
  private readonly committed: (() => void)[] | undefined;

  constructor(
    readonly kysely: Kysely<Database>,
    options: {
      inTransaction?: boolean;
      /** Let `transaction(fn, { groupCommit: true })` share commits (src/db/groupCommit.ts): 'savepoints' on SQLite, 'rerun' on PostgreSQL. */
      groupCommit?: 'savepoints' | 'rerun';
      /** In a transaction: where afterCommit collects its callbacks. */
      committed?: (() => void)[];
    } = {},
  ) {
    this.inTransaction = options.inTransaction ?? false;
    this.committed = options.committed;
    this.groupCommit = options.groupCommit && !this.inTransaction ? new GroupCommit(kysely, options.groupCommit) : undefined;
    this.users = new UserPersister(kysely);
    this.authenticators = new AuthenticatorPersister(kysely);
    this.sessions = new SessionPersister(kysely);
    this.flows = new FlowPersister(kysely);
    this.challenges = new ChallengePersister(kysely);
    this.audit = new AuditPersister(kysely);
    this.settings = new SettingsPersister(kysely);
    this.fidoMetadata = new FidoMetadataPersister(kysely);
    this.roles = new RolePersister(kysely);
    this.emailTemplates = new EmailTemplatePersister(kysely);
    this.rateCounters = new RateCounterPersister(kysely);
    this.signinFailures = new SigninFailurePersister(kysely);
    this.oidcModels = new OidcModelPersister(kysely);
    this.signingKeys = new SigningKeyPersister(kysely);
    this.services = new ServicePersister(kysely);
    this.apiTokens = new ApiTokenPersister(kysely);
    this.webhooks = new WebhookPersister(kysely);
    this.userImports = new UserImportPersister(kysely);
  }

  /** Group commits so far (the benchmark reports them); undefined where there are none. */
  get groupCommitStats(): { commits: number; transactions: number; reruns: number } | undefined {
    return this.groupCommit?.stats;
  }

  /** How this Store's group commits undo one caller's writes (src/db/groupCommit.ts); undefined where there are none. */
  get groupCommitKind(): 'savepoints' | 'rerun' | undefined {
    return this.groupCommit?.kind;
  }

  /**
   * Run `fn` with a Store whose writes land in one transaction. Inside a
   * transaction, `fn` joins it. With `groupCommit`, the transaction may commit
   * together with others started in the same turn of the event loop; `fn` must
   * then run database statements only, and on PostgreSQL it may run twice
   * (src/db/groupCommit.ts). `oneStatement`: `fn` runs one statement
   * (GroupCommit.run).
   */
  async transaction<T>(fn: (tx: Store) => Promise<T>, options: { groupCommit?: boolean; oneStatement?: boolean } = {}): Promise<T> {
    if (this.inTransaction) return fn(this);
    const committed: (() => void)[] = [];
    // A group commit on PostgreSQL may run `fn` again (src/db/groupCommit.ts): only the run that committed counts.
    const inTransaction = (trx: Kysely<Database>) => {
      committed.length = 0;
      return fn(new Store(trx, { inTransaction: true, committed }));
    };
    const value = await (options.groupCommit && this.groupCommit ? this.groupCommit.run(inTransaction, { oneStatement: options.oneStatement }) : this.kysely.transaction().execute(inTransaction));
    for (const callback of committed) callback();
    return value;
  }

  /**
   * Run `callback` once this Store's transaction has committed, never when it fails; outside a transaction, now.
   * For what must follow the writes and not outlive them when they fail: a session's cookie (on PostgreSQL a
   * transaction's writes may fail only at its commit: src/db/pgClient.ts).
   */
  afterCommit(callback: () => void): void {
    if (this.committed) this.committed.push(callback);
    else callback();
  }
}

/** The Store for a database, with group commits. */
export function createStore(db: Db): Store {
  return new Store(db.kysely, { groupCommit: db.dialect === 'sqlite' ? 'savepoints' : 'rerun' });
}
