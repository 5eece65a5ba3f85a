/**
 * The invite link page (seed 000 "Register a passkey", seed 003 "enrolment"):
 * instructions for this device, a phone or tablet via QR code, or a security
 * key; then a passkey ceremony. The account becomes Enrolled.
 */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from 'typebox';
import type { RegistrationResponseJSON } from '@simplewebauthn/server';
import { rateLimited } from '../../app.js';
import { audit } from '../../audit.js';
import { appError, mapUniqueViolation } from '../../errors.js';
import { startSession } from '../../plugins/sessions.js';
import { PasskeyNameSchema, PlacementSchema, RegistrationResponseSchema } from '../../webauthn/schemas.js';
import { renderPage } from '../../views/render.js';
import { cleanPasskeyName } from '../../webauthn/passkeyNames.js';
import { INVITE_FLOW, loadUsableInvite } from './invites.js';
import { EnrolPage } from './views.js';
import { NoScriptForm, NoScriptQuery } from '../../views/noScript.js';

export const ENROL_CEREMONY = 'enrol';

const Params = Type.Object({ token: Type.String({ maxLength: 100 }) });
const OptionsBody = Type.Object({ name: Type.Optional(Type.Union([PasskeyNameSchema, Type.Literal('')])), placement: PlacementSchema });
const VerifyBody = Type.Object({
  response: RegistrationResponseSchema,
  name: Type.Optional(Type.String({ maxLength: 64 })),
  placement: Type.Optional(Type.String({ maxLength: 32 })),
});

export async function enrolmentRoutes(app: FastifyInstance) {
  const { config, store, webauthn, now } = app.latchkey;

  app.get<{ Params: Static<typeof Params>; Querystring: Static<typeof NoScriptQuery> }>(
    '/enrol/:token',
    { schema: { params: Params, querystring: NoScriptQuery } },
    async (request, reply) => {
      const invite = await loadUsableInvite(store, request.params.token, now());
      const user = (await store.users.findById(invite.user_id!))!;
      reply.header('cache-control', 'no-store');
      const page = <EnrolPage config={config} csrfToken={request.csrfToken} user={user} noScript={request.query.nojs === '1'} />;
      return reply.type('text/html; charset=utf-8').send(renderPage(page));
    },
  );
  // The form posts here only when the page's script did not run.
  app.post<{ Params: Static<typeof Params> }>('/enrol/:token', { schema: { params: Params, body: NoScriptForm } }, async (request, reply) =>
    reply.redirect(`/enrol/${encodeURIComponent(request.params.token)}?nojs=1`, 303),
  );

  app.post<{ Params: Static<typeof Params>; Body: Static<typeof OptionsBody> }>(
    '/enrol/:token/options',
    { schema: { params: Params, body: OptionsBody }, ...rateLimited(app) },
    async (request) => {
      const invite = await loadUsableInvite(store, request.params.token, now());
      const user = (await store.users.findById(invite.user_id!))!;
      const existing = await store.authenticators.listForUser(user.id);
      const options = await webauthn.startRegistration({
        flowType: ENROL_CEREMONY,
        bindingHash: request.bindingHash,
        user: { id: user.id, email: user.email, displayName: user.display_name },
        existing,
        placement: request.body.placement,
        persistUserId: user.id,
        data: { inviteId: invite.id },
      });
      return { options };
    },
  );

  app.post<{ Params: Static<typeof Params>; Body: Static<typeof VerifyBody> }>(
    '/enrol/:token/verify',
    { schema: { params: Params, body: VerifyBody }, ...rateLimited(app) },
    async (request, reply) => {
      const invite = await loadUsableInvite(store, request.params.token, now());
      const ceremony = await webauthn.peekFlow(ENROL_CEREMONY, request.body.response.response.clientDataJSON, request.bindingHash);
      if ((JSON.parse(ceremony.data) as { inviteId?: string }).inviteId !== invite.id) throw appError('challenge_invalid');
      const user = (await store.users.findById(invite.user_id!))!;
      const { authenticator } = await webauthn.finishRegistration({
        flowType: ENROL_CEREMONY,
        bindingHash: request.bindingHash,
        response: request.body.response as RegistrationResponseJSON,
        name: cleanPasskeyName(request.body.name),
        userId: user.id,
      });
      await store.transaction(async (tx) => {
        // Consumed here and only here: by the registration that succeeds, atomically with storing its passkey.
        if (!(await tx.flows.consume(invite.id, now()))) throw appError('invite_used');
        // Any other link still out for this person stops working now that they are enrolled.
        await tx.flows.revokeActiveForUser(user.id, INVITE_FLOW, now());
        await tx.authenticators.insert(authenticator);
        await tx.users.setStatus(user.id, 'enrolled', now());
        await audit(app, request, { event: 'enrolment.completed', subjectUserId: user.id, actorUserId: user.id, authenticatorId: authenticator.id }, tx);
        await audit(app, request, { event: 'passkey.added', subjectUserId: user.id, actorUserId: user.id, authenticatorId: authenticator.id, detail: { name: authenticator.name } }, tx);
      }).catch(mapUniqueViolation('credential_exists'));
      await startSession(app, request, reply, user);
      return { status: 'ok', redirect: '/settings?enrolled=1' };
    },
  );
}
