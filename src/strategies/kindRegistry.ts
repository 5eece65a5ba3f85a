/**
 * The registry of authenticator kinds (authenticatorKind.ts): every place that
 * lists, labels or weighs authenticators asks it, and the assurance of any
 * authenticator is worked out here and only here — for the ID token's acr and
 * amr, the session's level at sign-in and step-up, the step-up decision, the
 * services page and the console.
 */
import { Value } from 'typebox/value';
import { readKindConfig } from './authenticatorKind.js';
import { Trust } from '../webauthn/trust.js';
import type { Config } from '../config/index.js';
import type { Authenticator, User } from '../db/schema.js';
import type { Store } from '../db/store.js';
import type { AgentIssueChoice, AnyKind, Assurance, Aal, KindContext, KindDisplay, SelfServiceChoice } from './authenticatorKind.js';

export class KindRegistry {
  private readonly byType = new Map<string, AnyKind>();

  constructor(
    kinds: readonly AnyKind[],
    private readonly config: Config,
    /** The metadata and policy a passkey's assurance depends on; nothing trusted when not given. */
    private readonly trust: Trust = new Trust(),
  ) {
    for (const kind of kinds) {
      if (this.byType.has(kind.type)) throw new Error(`authenticator kind "${kind.type}" is registered twice`);
      this.byType.set(kind.type, kind);
    }
    const values = this.selfServiceChoices().map((c) => c.value);
    const unsafe = values.find((v) => !/^[a-z0-9][a-z0-9:_-]{0,63}$/.test(v));
    if (unsafe !== undefined) throw new Error(`self-service choice "${unsafe}": use up to 64 lower-case letters, digits, ':', '_' or '-'`);
    const repeated = values.find((v, i) => values.indexOf(v) !== i);
    if (repeated) throw new Error(`two authenticator kinds offer the self-service choice "${repeated}"`);
  }

  all(): AnyKind[] {
    return [...this.byType.values()];
  }

  get(type: string): AnyKind | undefined {
    return this.byType.get(type);
  }

  /** The stored configuration of an authenticator, checked against its kind's schema; undefined when it doesn't match. */
  configOf<T = unknown>(authenticator: Pick<Authenticator, 'type' | 'config'>): T | undefined {
    const kind = this.byType.get(authenticator.type);
    return kind ? (readKindConfig(kind, authenticator) as T | undefined) : undefined;
  }

  /** The stored configuration for a new authenticator of `type`: checked against the kind's schema before it is written. */
  serializeConfig(type: string, config: unknown): string {
    const kind = this.byType.get(type);
    if (!kind) throw new Error(`unknown authenticator kind "${type}"`);
    if (!Value.Check(kind.config, config)) throw new Error(`configuration does not match the "${type}" kind's schema`);
    return JSON.stringify(config);
  }

  private context(user: Pick<User, 'password_hash'>): KindContext {
    return { config: this.config, user, trust: this.trust };
  }

  /**
   * What a sign-in with this authenticator is worth (NIST SP 800-63B rev 4, RFC 8176): the one assurance function.
   * Undefined for a kind that is not registered, a configuration that doesn't match its schema, or an authenticator
   * that can't sign anyone in on its own.
   */
  assuranceOf(authenticator: Authenticator, user: Pick<User, 'password_hash'>): Assurance | undefined {
    const kind = this.byType.get(authenticator.type);
    const config = this.configOf(authenticator);
    if (!kind || config === undefined) return undefined;
    return kind.assurance(authenticator, config, this.context(user));
  }

  /**
   * The authenticators that can sign this person in now (assuranceOf defined): what "your last way to sign in" and "your
   * only passkey" count. A password row under LATCHKEY_PASSWORD_SIGNIN=with-app, an app without a password, a work
   * account at a provider no longer configured or a passkey the policy refuses is stored but opens nothing, so it never
   * stands in for the last way in.
   */
  waysIn(user: Pick<User, 'password_hash'>, authenticators: Authenticator[]): Authenticator[] {
    return authenticators.filter((a) => this.assuranceOf(a, user));
  }

  /** The level a sign-in (or step-up) with this authenticator reached; for authenticators that just signed someone in. */
  signInAal(authenticator: Authenticator, user: Pick<User, 'password_hash'>): Aal {
    const assurance = this.assuranceOf(authenticator, user);
    if (!assurance) throw new Error(`a ${authenticator.type} authenticator can't sign in on its own`);
    return assurance.aal;
  }

  /**
   * The highest level a person can confirm it is them at without leaving a service's request (/settings/reauth),
   * and so the highest a service can get from them: the kinds that step up as `primary`, or, for someone who has
   * none of those, the `fallback` ones. The step-up decision, the provider's checks and the services page all use it.
   */
  reachableAal(user: Pick<User, 'password_hash'>, authenticators: Authenticator[]): Aal | 0 {
    let best: Aal | 0 = 0;
    for (const a of this.stepUpCandidates(user, authenticators)) best = Math.max(best, this.assuranceOf(a, user)!.aal) as Aal;
    return best;
  }

  /** The authenticators /settings/reauth offers to this person: the rule reachableAal counts by. */
  stepUpCandidates(user: Pick<User, 'password_hash'>, authenticators: Authenticator[]): Authenticator[] {
    const usable = this.waysIn(user, authenticators);
    const primary = usable.filter((a) => this.byType.get(a.type)!.stepUp === 'primary');
    return primary.length ? primary : usable.filter((a) => this.byType.get(a.type)!.stepUp === 'fallback');
  }

  /** How an authenticator shows in lists; an unregistered kind shows by its type. */
  displayOf(authenticator: Authenticator, user: Pick<User, 'password_hash'>): KindDisplay {
    const kind = this.byType.get(authenticator.type);
    const config = this.configOf(authenticator);
    if (!kind || config === undefined) return { label: authenticator.type };
    return kind.display(authenticator, config, this.context(user));
  }

  /** Every option of self-service's "Select authenticator type" page, in registry order. */
  selfServiceChoices(): SelfServiceChoice[] {
    return this.all().flatMap((k) => k.selfServiceChoices?.(this.config) ?? []);
  }

  /** Everything an agent may issue, in registry order. */
  agentIssueChoices(): AgentIssueChoice[] {
    return this.all().flatMap((k) => k.agentIssue ?? []);
  }

  /**
   * What removing an authenticator takes with it, in the removal's transaction: its kind's onRemoved, and the
   * password once no authenticator that signs in with it is left (the last app, or a password alone, whichever goes last).
   */
  async removed(tx: Store, user: User, authenticator: Authenticator, now: number): Promise<void> {
    const kind = this.byType.get(authenticator.type);
    await kind?.onRemoved?.(tx, user, authenticator, now);
    if (kind?.usesPassword && !(await tx.authenticators.listForUser(user.id)).some((a) => this.byType.get(a.type)?.usesPassword)) {
      await tx.users.setPasswordHash(user.id, null, now);
    }
  }

  /** The words for every kind's own audit events. */
  auditEventLabels(): Record<string, string> {
    return Object.assign({}, ...this.all().map((k) => k.auditEvents ?? {}));
  }
}
