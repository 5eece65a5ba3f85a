/**
 * Issuing a passkey enrolment to a person — a link, a 9-character code, or an enrolment email from a template — as
 * the console and the admin API both do it: one set of refusals (suspended, no FIDO metadata for a security key), the
 * earlier link or code revoked, the audit record in the same transaction, and an email link revoked again when the
 * email could not be sent. Callers differ only in how they show what was issued.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { audit } from '../../audit.js';
import { appError } from '../../errors.js';
import type { Flow, User } from '../../db/schema.js';
import { findEnrolmentTemplate, issueEnrolmentEmail } from './enrolmentEmail.js';
import { issueCode, issueInvite, type RevealTo } from './invites.js';

export type IssueMethod = 'link' | 'code' | 'email';

export interface IssueEnrolmentOptions {
  method: IssueMethod;
  /** The email template (method email); the default template when absent. */
  templateId?: string;
  /** "Security key (AAL3)": the ceremony takes only an attested security key. */
  requires?: 'security-key';
  /** The agent issuing it; null when an API token does (the audit record names the token). */
  issuedBy: string | null;
  /** The console keeps the link or code sealed for its one showing on the next page (invites.ts). */
  revealTo?: RevealTo;
}

export interface IssuedEnrolment {
  method: IssueMethod;
  flowId: string;
  expiresAt: number;
  /** A link's token and URL (method link or email): the caller shows them once or sends them; never stored. */
  token?: string;
  url?: string;
  /** The 9-character code (method code), shown once. */
  code?: string;
  /** Where the enrolment email went (method email), and with which template. */
  emailedTo?: string;
  templateId?: string;
}

/** Issue an enrolment to `user`; throws `user_suspended` for a suspended person and `validation_failed` for what can't be issued. */
export async function issueEnrolment(app: FastifyInstance, request: FastifyRequest, user: User, options: IssueEnrolmentOptions): Promise<IssuedEnrolment> {
  const { config, store, now, secret } = app.latchkey;
  if (user.status === 'suspended') throw appError('user_suspended', `${user.display_name} is suspended. Reactivate them before issuing an authenticator.`);
  const { method, requires } = options;
  // A link or code for a key no one can register would only revoke the one the person has.
  if (requires && app.latchkey.trust.metadata().size === 0) {
    throw appError('validation_failed', 'No FIDO metadata is loaded, so no security key can be registered yet. Ask your administrator to load it (latchkey metadata import FILE).');
  }
  const what = requires ? { requires } : {};
  if (method === 'code') {
    // The earlier link's revocation, the new code (sealed for its one showing) and the audit record: one transaction.
    const issued = await issueCode(store, config, secret, user, now(), options.issuedBy, {
      ...what,
      revealTo: options.revealTo,
      alongside: (tx, flowId) => audit(app, request, { event: 'enrolment.code_issued', subjectUserId: user.id, detail: { flowId, ...what } }, tx),
    });
    app.latchkey.metrics.enrolment('issued', method);
    return { method, flowId: issued.flowId, expiresAt: issued.expiresAt, code: issued.code };
  }
  const issueOptions = { issuedBy: options.issuedBy, method, lifetimeSeconds: config.agentLinkSeconds, templateId: options.templateId, ...what };
  if (method === 'email') {
    const template = await findEnrolmentTemplate(store, options.templateId);
    const { method: _email, templateId: _chosen, ...emailOptions } = issueOptions;
    // Nothing half-done: a link nobody received is revoked before this throws.
    const issued = await issueEnrolmentEmail(app.latchkey, template, user, now(), emailOptions);
    await audit(app, request, { event: 'enrolment.emailed', subjectUserId: user.id, detail: { flowId: issued.flowId, templateId: template.id, ...what } });
    app.latchkey.metrics.enrolment('issued', method);
    return { method, flowId: issued.flowId, expiresAt: issued.expiresAt, emailedTo: user.email, templateId: template.id };
  }
  // As for a code: revocation, the sealed link and the audit record land together or not at all.
  const issued = await issueInvite(store, config, user, now(), {
    ...issueOptions,
    revealTo: options.revealTo,
    alongside: (tx, flowId) => audit(app, request, { event: 'enrolment.link_issued', subjectUserId: user.id, detail: { flowId, ...what } }, tx),
  });
  app.latchkey.metrics.enrolment('issued', method);
  return { method, flowId: issued.flowId, expiresAt: issued.expiresAt, token: issued.token, url: issued.url };
}

/** Revoke an issued link or code, audited with it; false when it was no longer active (used, revoked or expired). */
export async function revokeEnrolment(app: FastifyInstance, request: FastifyRequest, flow: Flow): Promise<boolean> {
  const { store, now } = app.latchkey;
  return store.transaction(async (tx) => {
    if (!(await tx.flows.revoke(flow.id, now()))) return false;
    await audit(app, request, { event: 'enrolment.revoked', subjectUserId: flow.user_id, detail: { flowId: flow.id } }, tx);
    return true;
  });
}
