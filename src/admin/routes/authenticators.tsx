/**
 * A person's authenticators in the console: the Authenticators tab (with the links and codes still outstanding),
 * choosing what to issue, and removing one (seed 000). Issuing itself is enrolments.tsx.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { appError } from '../../errors.js';
import type { User } from '../../db/schema.js';
import { html } from '../../http/replies.js';
import { Csrf, Id } from '../../http/schemas.js';
import { renderPage } from '../../views/render.js';
import { CODE_FLOW, ENROLMENT_FLOWS, enrolmentData, INVITE_FLOW, loadEnrolmentStatus } from '../../flows/enrolment/invites.js';
import { passkeyStanding } from '../../webauthn/policyInWords.js';
import { AUTHENTICATOR_NOT_FOUND_MESSAGE, removeAuthenticator } from '../removeAuthenticator.js';
import { AuthenticatorsTab, ChooseTypePage, IssuePasskeyPage, RemoveAuthenticatorPage, type OutstandingEnrolment } from '../views.js';
import { adminContext as ctx, Flash, flashFor, loadOtherUser, loadUser, UserParams } from './shared.js';

const AuthenticatorParams = Type.Object({ id: Id, authenticatorId: Id });
const ChooseTypeBody = Type.Object({ ...Csrf, type: Type.Optional(Type.String({ maxLength: 32 })) });
const RemoveBody = Type.Object({ ...Csrf, confirm: Type.Optional(Type.String({ maxLength: 16 })) });

export async function consoleAuthenticatorsRoutes(app: FastifyInstance) {
  const { store, now } = app.latchkey;
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  async function authenticatorsTab(request: FastifyRequest, reply: FastifyReply, user: User, flash: string | null) {
    const [authenticators, flows] = await Promise.all([store.authenticators.listForUser(user.id), store.flows.listForUser(user.id, ENROLMENT_FLOWS, 20)]);
    // A link a redeemed code opened is shown as that code.
    const shown = flows.filter((f) => !(f.type === INVITE_FLOW && enrolmentData(f).parentId));
    const people = new Set<string>();
    for (const a of authenticators) if (a.issued_by) people.add(a.issued_by);
    for (const f of shown) {
      const by = enrolmentData(f).issuedBy;
      if (by) people.add(by);
    }
    const issuers = new Map<string, string>();
    for (const id of people) {
      const u = await store.users.findById(id);
      if (u) issuers.set(id, u.display_name);
    }
    const t = now();
    const enrolments: OutstandingEnrolment[] = [];
    for (const flow of shown) {
      const data = enrolmentData(flow);
      enrolments.push({
        flow,
        status: await loadEnrolmentStatus(store, flow, t),
        method: data.method ?? (flow.type === CODE_FLOW ? 'code' : 'link'),
        issuedBy: data.issuedBy ? (issuers.get(data.issuedBy) ?? 'A former agent') : data.method === 'cli' ? 'Command line' : 'Latchkey',
      });
    }
    const { kinds, trust } = app.latchkey;
    const standings = new Map(authenticators.filter((a) => kinds.get(a.type)?.settingsSection === 'passkeys').map((a) => [a.id, passkeyStanding(a, user, kinds, trust)]));
    return html(
      reply,
      renderPage(<AuthenticatorsTab {...ctx(request)} user={user} authenticators={authenticators} standings={standings} issuers={issuers} enrolments={enrolments} flash={flash} />),
    );
  }

  r.get('/admin/users/:id/authenticators', { config: { permission: 'users.view' }, schema: { params: UserParams, querystring: Flash } }, async (request, reply) => {
    const user = await loadUser(request, request.params.id);
    return authenticatorsTab(request, reply, user, flashFor(request.query.done, user));
  });

  // ---------------------------------------------------------------- choose what to issue

  r.get('/admin/users/:id/issue', { config: { permission: 'authenticators.issue' }, schema: { params: UserParams } }, async (request, reply) => {
    const user = await loadOtherUser(request, request.params.id);
    return html(reply, renderPage(<ChooseTypePage {...ctx(request)} user={user} />));
  });

  r.post('/admin/users/:id/issue', { config: { permission: 'authenticators.issue' }, schema: { params: UserParams, body: ChooseTypeBody } }, async (request, reply) => {
    const user = await loadOtherUser(request, request.params.id);
    const choice = app.latchkey.kinds.agentIssueChoices().find((c) => c.value === request.body.type);
    if (!choice) return html(reply, renderPage(<ChooseTypePage {...ctx(request)} user={user} error="Select an authenticator type" />), 400);
    return reply.redirect(choice.path(user.id), 303);
  });

  for (const securityKey of [false, true]) {
    // "Security key (AAL3)" beside "Passkey": the same link, code or email, for a ceremony that takes only an attested security key.
    r.get(`/admin/users/:id/issue/${securityKey ? 'security-key' : 'passkey'}`, { config: { permission: 'authenticators.issue' }, schema: { params: UserParams } }, async (request, reply) => {
      const user = await loadOtherUser(request, request.params.id);
      if (user.status === 'suspended') throw appError('user_suspended', `${user.display_name} is suspended. Reactivate them before issuing an authenticator.`);
      const metadataLoaded = app.latchkey.trust.metadata().size > 0;
      return html(reply, renderPage(<IssuePasskeyPage {...ctx(request)} user={user} templates={await store.emailTemplates.list()} securityKey={securityKey} metadataLoaded={metadataLoaded} />));
    });
  }

  // ---------------------------------------------------------------- remove an authenticator (seed 000)

  async function loadAuthenticator(request: FastifyRequest, params: { id: string; authenticatorId: string }) {
    const user = await loadOtherUser(request, params.id);
    const authenticator = await store.authenticators.findForUser(user.id, params.authenticatorId);
    if (!authenticator) throw appError('not_found', AUTHENTICATOR_NOT_FOUND_MESSAGE);
    return { user, authenticator };
  }

  r.get(
    '/admin/users/:id/authenticators/:authenticatorId/remove',
    { config: { permission: 'authenticators.remove' }, schema: { params: AuthenticatorParams } },
    async (request, reply) => {
      const { user, authenticator } = await loadAuthenticator(request, request.params);
      return html(reply, renderPage(<RemoveAuthenticatorPage {...ctx(request)} user={user} authenticator={authenticator} />));
    },
  );

  r.post(
    '/admin/users/:id/authenticators/:authenticatorId/remove',
    { config: { permission: 'authenticators.remove' }, schema: { params: AuthenticatorParams, body: RemoveBody } },
    async (request, reply) => {
      const { user, authenticator } = await loadAuthenticator(request, request.params);
      if (request.body.confirm !== 'yes') {
        const page = <RemoveAuthenticatorPage {...ctx(request)} user={user} authenticator={authenticator} error="Select the box to confirm you want to remove the passkey" />;
        return html(reply, renderPage(page), 400);
      }
      const { notified } = await removeAuthenticator(app, request, user, authenticator);
      return reply.redirect(`/admin/users/${user.id}/authenticators?done=${notified ? 'removed' : 'removed-unnotified'}`, 303);
    },
  );
}
