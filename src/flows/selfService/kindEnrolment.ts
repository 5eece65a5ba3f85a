/**
 * What a kind of authenticator uses to add itself from self-service
 * (authenticatorKind.ts `selfServiceChoices`): the flow at the choice — the
 * person's identity checked, or confirmed in settings — its person, and one
 * way to finish. A kind's pages live in its own folder and call these; the
 * self-service flow knows nothing of them but the path of each choice.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Static, TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { audit } from '../../audit.js';
import { appError } from '../../errors.js';
import type { Flow, User } from '../../db/schema.js';
import type { Store } from '../../db/store.js';
import { sendAuthenticatorAddedNotice } from '../../mail/sendAuthenticatorAddedNotice.js';
import { sendRecoveryNotice } from '../../mail/sendRecoveryNotice.js';
import { selfServiceFlow, type SelfServiceDataSchema } from './selfServiceFlow.js';
import type { Base } from './views.js';

export type SelfServiceData = Static<typeof SelfServiceDataSchema>;

/** A self-service flow at the choice of authenticator, and the person it checked. */
export interface SelfServiceEnrolment {
  flow: Flow;
  data: SelfServiceData;
  user: User;
}

/** This browser's self-service flow, active and past the identity check; otherwise the page that says to start again. */
export async function loadSelfServiceEnrolment(app: FastifyInstance, request: FastifyRequest & { params: { flowId: string } }): Promise<SelfServiceEnrolment> {
  const { store, now } = app.latchkey;
  const { flow, data } = await selfServiceFlow.load(store, { id: request.params.flowId, bindingHash: request.bindingHash, now: now() }, 'choose');
  const user = (await store.users.findById(flow.user_id!))!;
  return { flow, data, user };
}

/** What a kind's self-service page needs to look like the flow's others (views.tsx `Base`): Back links and steps follow where the flow started. */
export function selfServicePageBase(app: FastifyInstance, request: FastifyRequest, data?: SelfServiceData): Base {
  return { config: app.latchkey.config, csrfToken: request.csrfToken, fromSettings: data?.origin === 'settings' };
}

/** Keep a kind's progress through its own pages in the flow, in place of any other kind's. */
export async function saveKindProgress(app: FastifyInstance, enrolment: SelfServiceEnrolment, type: string, progress: object): Promise<void> {
  const { store, now } = app.latchkey;
  const data: SelfServiceData = { ...enrolment.data, step: 'verified', kindProgress: { ...progress, type } };
  await selfServiceFlow.advance(store, { flow: enrolment.flow, data: enrolment.data }, data, now());
}

/** The kind's progress, read with its own schema; undefined when another kind's, none, or unreadable. */
export function kindProgressOf<S extends TSchema>(enrolment: SelfServiceEnrolment, type: string, schema: S): Static<S> | undefined {
  const progress = enrolment.data.kindProgress;
  if (progress?.type !== type) return undefined;
  const { type: _type, ...rest } = progress;
  return Value.Check(schema, rest) ? (rest as Static<S>) : undefined;
}

/** As kindProgressOf, but a page reached before the kind's earlier pages are done says to start again, as the flow's own pages do. */
export function requireKindProgress<S extends TSchema>(enrolment: SelfServiceEnrolment, type: string, schema: S, accept: (progress: Static<S>) => boolean = () => true): Static<S> {
  const progress = kindProgressOf(enrolment, type, schema);
  if (progress === undefined || !accept(progress)) throw appError('flow_expired', 'These steps must be done in order. Start again.');
  return progress;
}

export interface AddedBySelfService {
  /** The choice's value (SelfServiceChoice.value): the done page names what was added from it. */
  choice: string;
  /** For the audit record and the email to the person: "passkey", "authenticator app". */
  what: string;
  /** Writes the authenticator (and the kind's own audit event) in the flow's transaction; returns its id. */
  add(tx: Store): Promise<string>;
}

/**
 * Whether adding an authenticator is a recovery: after the identity check, to a profile that already has one, by
 * someone who did not use any of them. A flow started from settings (startVerifiedFlow) is not one: the person was
 * signed in and had just confirmed it is them. Nor is a first authenticator: there was nothing to use.
 */
export function isRecovery(data: SelfServiceData, existingAuthenticators: number): boolean {
  return data.origin !== 'settings' && existingAuthenticators > 0;
}

/**
 * Finish a self-service flow with what a kind added: in one transaction the flow is used up, the authenticator
 * written, a pending person enrolled and, for a recovery, the `recovery.authenticator_added` record; then the
 * `self_service.added` record and the email to the person (for a recovery, to every address on the profile, saying
 * how and what to do if it wasn't them). A recovery ends no session: the email says so and where to end them.
 * Returns the done page.
 */
export async function completeSelfServiceEnrolment(app: FastifyInstance, request: FastifyRequest, enrolment: SelfServiceEnrolment, added: AddedBySelfService): Promise<string> {
  const { store, now, mailer, config } = app.latchkey;
  const { flow, user, data } = enrolment;
  const { authenticatorId, recovery } = await store.transaction(async (tx) => {
    // The whole attempt is used up by the authenticator it added.
    await selfServiceFlow.consume(tx, flow, now());
    const recovery = isRecovery(data, await tx.authenticators.countForUser(user.id));
    const id = await added.add(tx);
    if (user.status === 'pending') await tx.users.setStatus(user.id, 'enrolled', now());
    // By the person as the identity check knows them (as self_service.added); `via` says that is all it rests on.
    if (recovery) await audit(app, request, { event: 'recovery.authenticator_added', subjectUserId: user.id, actorUserId: user.id, authenticatorId: id, detail: { what: added.what, via: 'identity_check' } }, tx);
    return { authenticatorId: id, recovery };
  });
  // By the choice's value (one per kind the registry lists: a fixed set), "authenticator app" as authenticator_app.
  app.latchkey.metrics.ceremony('self_service', added.what.replace(/[^a-z0-9]+/gi, '_'), 'success');
  await audit(app, request, { event: 'self_service.added', subjectUserId: user.id, actorUserId: user.id, authenticatorId, detail: { what: added.what } });
  if (recovery) await sendRecoveryNotice({ mailer, config, log: request.log }, user, { what: added.what }, now());
  else await sendAuthenticatorAddedNotice({ mailer, config, log: request.log }, user, { what: added.what }, now());
  // Choice values are URL-safe (the registry checks them).
  return `/add-authenticator/${flow.id}/done?added=${added.choice}`;
}
