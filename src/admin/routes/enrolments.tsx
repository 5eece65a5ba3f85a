/**
 * Issuing a passkey enrolment in the console: a link, a code or an enrolment email; the page of what was issued
 * (shown once), its live status, sending a link by email, and revoking.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { audit } from '../../audit.js';
import { appError } from '../../errors.js';
import type { Flow, User } from '../../db/schema.js';
import { hashToken, safeEqual } from '../../crypto.js';
import { html } from '../../http/replies.js';
import { Csrf, CsrfBody, Id } from '../../http/schemas.js';
import { renderPage } from '../../views/render.js';
import {
  CODE_FLOW,
  ENROLMENT_FLOWS,
  enrolmentData,
  INVITE_FLOW,
  issueCode,
  issueInvite,
  loadEnrolmentStatus,
  type EnrolmentMethod,
  type RevealTo,
} from '../../flows/enrolment/invites.js';
import { findEnrolmentTemplate, issueEnrolmentEmail, sendEnrolmentEmail } from '../../flows/enrolment/enrolmentEmail.js';
import { agentOf } from '../guard.js';
import { IssuedPage } from '../views.js';
import { adminContext as ctx, Flash, loadOtherUser, UserParams } from './shared.js';

const FlowParams = Type.Object({ id: Id, flowId: Id });
const IssueBody = Type.Object({
  ...Csrf,
  method: Type.Union([Type.Literal('link'), Type.Literal('code'), Type.Literal('email')]),
  template: Type.Optional(Id),
  /** "Security key (AAL3)": the ceremony takes only an attested security key. */
  requires: Type.Optional(Type.Literal('security-key')),
});
const EmailLinkBody = Type.Object({ ...Csrf, token: Type.String({ maxLength: 100 }), template: Type.Optional(Id) });

export async function consoleEnrolmentsRoutes(app: FastifyInstance) {
  const { config, store, now, secret, mailer, secretBox } = app.latchkey;
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  /** Who sees what is being issued, once (see takeReveal): sealed into the flow as it is inserted. */
  const revealTo = (request: FastifyRequest): RevealTo => ({
    agentId: agentOf(request).user.id,
    bindingHash: request.bindingHash,
    seal: (value, flowId) => secretBox.seal(value, `enrolment-reveal:${flowId}`),
  });

  /**
   * The issued link or code, once: for the agent who issued it, in the browser they issued it from. Taking it removes
   * it in one conditional update, so of two loads of the page (a reload, a second tab) only one shows it.
   */
  async function takeReveal(request: FastifyRequest, user: User, flowId: string): Promise<{ flow: Flow; value?: string }> {
    for (;;) {
      const flow = await store.flows.findById(flowId);
      if (!flow || flow.user_id !== user.id || !ENROLMENT_FLOWS.includes(flow.type)) throw appError('not_found', 'That link or code was not found.');
      const data = enrolmentData(flow);
      const reveal = data.reveal;
      if (!reveal || reveal.agentId !== agentOf(request).user.id || reveal.bindingHash !== request.bindingHash) return { flow };
      const { reveal: _taken, ...rest } = data;
      const taken = { ...flow, data: JSON.stringify(rest) };
      // Lost to a concurrent change of the data (a load in another tab, the code being redeemed): read it again.
      if (!(await store.flows.swapData(flow.id, flow.data, taken.data))) continue;
      // A link or code that can no longer be used is not worth showing.
      const usable = flow.state === 'active' && flow.expires_at > now();
      return { flow: taken, value: usable ? secretBox.open(reveal.sealed, `enrolment-reveal:${flow.id}`) : undefined };
    }
  }

  // Post/redirect/get: issuing answers 303 to the page of what was issued, so a reload of that page issues nothing
  // (re-posting issued a new link and revoked the one already sent).
  r.post('/admin/users/:id/enrolments', { config: { permission: 'authenticators.issue' }, schema: { params: UserParams, body: IssueBody } }, async (request, reply) => {
    const user = await loadOtherUser(request, request.params.id);
    if (user.status === 'suspended') throw appError('user_suspended', `${user.display_name} is suspended. Reactivate them before issuing an authenticator.`);
    const agentId = agentOf(request).user.id;
    const method = request.body.method;
    const requires = request.body.requires;
    // A link or code for a key no one can register would only revoke the one the person has.
    if (requires && app.latchkey.trust.metadata().size === 0) {
      throw appError('validation_failed', 'No FIDO metadata is loaded, so no security key can be registered yet. Ask your administrator to load it (latchkey metadata import FILE).');
    }
    const what = requires ? { requires } : {};
    const issuedPage = (flowId: string, done?: 'emailed') => `/admin/users/${user.id}/enrolments/${flowId}${done ? `?done=${done}` : ''}`;
    if (method === 'code') {
      // The earlier link's revocation, the new code sealed for its one showing and the audit record: one transaction.
      const issued = await issueCode(store, config, secret, user, now(), agentId, {
        ...what,
        revealTo: revealTo(request),
        alongside: (tx, flowId) => audit(app, request, { event: 'enrolment.code_issued', subjectUserId: user.id, detail: { flowId, ...what } }, tx),
      });
      return reply.redirect(issuedPage(issued.flowId), 303);
    }
    const issueOptions = { issuedBy: agentId, method, lifetimeSeconds: config.agentLinkSeconds, templateId: request.body.template, ...what };
    if (method === 'email') {
      const { method: _email, templateId: _chosen, ...emailOptions } = issueOptions;
      const template = await findEnrolmentTemplate(store, request.body.template);
      // Nothing half-done: a link nobody received is revoked before this throws.
      const issued = await issueEnrolmentEmail({ store, config, mailer }, template, user, now(), emailOptions);
      await audit(app, request, { event: 'enrolment.emailed', subjectUserId: user.id, detail: { flowId: issued.flowId, templateId: template.id, ...what } });
      return reply.redirect(issuedPage(issued.flowId), 303);
    }
    // As for a code: revocation, the sealed link and the audit record land together or not at all.
    const issued = await issueInvite(store, config, user, now(), {
      ...issueOptions,
      revealTo: revealTo(request),
      alongside: (tx, flowId) => audit(app, request, { event: 'enrolment.link_issued', subjectUserId: user.id, detail: { flowId, ...what } }, tx),
    });
    return reply.redirect(issuedPage(issued.flowId), 303);
  });

  /** The page of one issued link, code or enrolment email: what was issued (once), its live status, Revoke. */
  r.get(
    '/admin/users/:id/enrolments/:flowId',
    { config: { permission: 'authenticators.issue' }, schema: { params: FlowParams, querystring: Flash } },
    async (request, reply) => {
      const user = await loadOtherUser(request, request.params.id);
      const { flow, value } = await takeReveal(request, user, request.params.flowId);
      const data = enrolmentData(flow);
      const emailed = data.method === 'email' || request.query.done === 'emailed';
      const method: EnrolmentMethod = flow.type === CODE_FLOW ? 'code' : emailed ? 'email' : 'link';
      const templates = await store.emailTemplates.list();
      const status = await loadEnrolmentStatus(store, flow, now());
      const shown =
        method === 'code' ? { code: value } : method === 'link' ? { link: value && `${config.origin}/enrol/${value}`, token: value } : { emailedTo: user.email };
      return html(reply, renderPage(<IssuedPage {...ctx(request)} user={user} flow={flow} method={method} status={status} {...shown} templates={templates} serverNow={now()} />));
    },
  );

  /** Another person's enrolment link or code of one of `types`, or 404. */
  async function loadEnrolment(request: FastifyRequest, params: { id: string; flowId: string }, types: readonly string[]) {
    const user = await loadOtherUser(request, params.id);
    const flow = await store.flows.findById(params.flowId);
    if (!flow || flow.user_id !== user.id || !types.includes(flow.type)) throw appError('not_found', types.length === 1 ? 'That link was not found.' : 'That link or code was not found.');
    return { user, flow };
  }

  // "Send by email" beside a generated link: the agent's page holds the token, the server only its hash.
  r.post(
    '/admin/users/:id/enrolments/:flowId/email',
    { config: { permission: 'authenticators.issue' }, schema: { params: FlowParams, body: EmailLinkBody } },
    async (request, reply) => {
      const { user, flow } = await loadEnrolment(request, request.params, [INVITE_FLOW]);
      if (!safeEqual(flow.lookup, hashToken(request.body.token))) throw appError('not_found', 'That link was not found.');
      if (flow.state !== 'active' || flow.expires_at <= now()) throw appError('invite_revoked', 'That link can no longer be used: generate a new one.');
      const link = `${config.origin}/enrol/${request.body.token}`;
      const template = await findEnrolmentTemplate(store, request.body.template);
      await sendEnrolmentEmail({ config, mailer }, template, user, link, flow.expires_at);
      await audit(app, request, { event: 'enrolment.emailed', subjectUserId: user.id, detail: { flowId: flow.id, templateId: template.id } });
      return reply.redirect(`/admin/users/${user.id}/enrolments/${flow.id}?done=emailed`, 303);
    },
  );

  r.get('/admin/enrolments/:flowId/status', { config: { permission: 'users.view' }, schema: { params: Type.Object({ flowId: Id }) } }, async (request, reply) => {
    const flow = await store.flows.findById(request.params.flowId);
    if (!flow || !flow.user_id || !ENROLMENT_FLOWS.includes(flow.type)) throw appError('not_found');
    const status = await loadEnrolmentStatus(store, flow, now());
    reply.header('cache-control', 'no-store');
    // redeemed: the person entered the code and is setting up a passkey, so the code's lifetime no longer counts.
    return { status, expiresAt: flow.expires_at, redeemed: flow.type === CODE_FLOW && flow.state === 'consumed' };
  });

  r.post(
    '/admin/users/:id/enrolments/:flowId/revoke',
    { config: { permission: 'authenticators.issue' }, schema: { params: FlowParams, body: CsrfBody } },
    async (request, reply) => {
      const { user, flow } = await loadEnrolment(request, request.params, ENROLMENT_FLOWS);
      const revoked = await store.transaction(async (tx) => {
        if (!(await tx.flows.revoke(flow.id, now()))) return false;
        await audit(app, request, { event: 'enrolment.revoked', subjectUserId: user.id, detail: { flowId: flow.id } }, tx);
        return true;
      });
      return reply.redirect(`/admin/users/${user.id}/authenticators?done=${revoked ? 'revoked' : 'not-revoked'}`, 303);
    },
  );
}
