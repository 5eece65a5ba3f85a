/**
 * Sign up (when LATCHKEY_SIGNUP=open): display name + email, then a passkey is
 * created at once. Nothing is stored until the passkey is verified; then the
 * user (Enrolled), the passkey and the audit event are written in one
 * transaction.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import type { RegistrationResponseJSON } from '@simplewebauthn/server';
import { rateLimited } from '../../plugins/rateLimited.js';
import { audit } from '../../audit.js';
import { randomToken } from '../../crypto.js';
import { normalizeEmail } from '../../db/persisters/users.js';
import { appError, mapUniqueViolation } from '../../errors.js';
import { startSession } from '../../plugins/sessions.js';
import { DisplayNameSchema, EmailSchema, PlacementSchema, RegistrationResponseSchema } from '../../webauthn/schemas.js';
import { cleanPasskeyName } from '../../webauthn/passkeyNames.js';
import { renderPage } from '../../views/render.js';
import { html } from '../../http/replies.js';
import { SignUpPage } from './views.js';
import { NoScriptForm, NoScriptQuery } from '../../views/noScript.js';
import { defineFlow } from '../flowMachine.js';
import { originDetail } from '../../webauthn/allowedOrigins.js';
import { countFailures } from '../../metrics/metrics.js';

export const SIGNUP_FLOW = 'signup';

const OptionsBody = Type.Object({
  displayName: DisplayNameSchema,
  email: EmailSchema,
  /** "Name your device": blank or absent names the passkey after its provider. */
  name: Type.Optional(Type.String({ maxLength: 64 })),
  placement: Type.Optional(PlacementSchema),
});
const VerifyBody = Type.Object({
  response: RegistrationResponseSchema,
  displayName: Type.Optional(Type.String({ maxLength: 100 })),
  email: Type.Optional(Type.String({ maxLength: 254 })),
  name: Type.Optional(Type.String({ maxLength: 64 })),
  placement: Type.Optional(Type.String({ maxLength: 32 })),
});

/** The sign-up ceremony: who is signing up, kept server-side until the passkey is verified. */
const signUpCeremony = defineFlow({
  type: SIGNUP_FLOW,
  data: Type.Object({
    userId: Type.String(),
    email: Type.String(),
    displayName: Type.String(),
    placement: Type.String(),
    /** The name chosen on the form, kept with the ceremony: the verify request's copy is not trusted. */
    passkeyName: Type.Optional(Type.String()),
  }),
});
type SignUpData = Static<typeof signUpCeremony.schema>;

export async function signUpRoutes(app: FastifyInstance) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const { config, store, webauthn } = app.latchkey;
  const ensureOpen = () => {
    if (config.signup !== 'open') throw appError('signup_closed');
  };

  r.get('/signup', { schema: { querystring: NoScriptQuery } }, async (request, reply) => {
    ensureOpen();
    if (request.auth) return reply.redirect('/settings');
    const page = <SignUpPage config={config} csrfToken={request.csrfToken} noScript={request.query.nojs === '1'} />;
    return html(reply, renderPage(page));
  });
  // The form posts here only when the page's script did not run.
  r.post('/signup', { schema: { body: NoScriptForm } }, async (_request, reply) => reply.redirect('/signup?nojs=1', 303));

  r.post('/signup/options', { schema: { body: OptionsBody }, ...rateLimited(app) }, async (request) => {
    ensureOpen();
    const email = request.body.email.trim();
    const displayName = request.body.displayName.trim();
    if (await store.users.findByEmail(email)) {
      throw appError('email_unavailable', undefined, [{ field: 'email', message: 'An account could not be created with that email address' }]);
    }
    const data: SignUpData = { userId: randomToken(16), email, displayName, placement: request.body.placement ?? 'this-device', passkeyName: cleanPasskeyName(request.body.name) };
    const options = await webauthn.startRegistration({
      flowType: SIGNUP_FLOW,
      bindingHash: request.bindingHash,
      user: { id: data.userId, email, displayName },
      existing: [],
      placement: request.body.placement ?? 'any',
      data,
    });
    return { options };
  });

  r.post('/signup/verify', { schema: { body: VerifyBody }, ...rateLimited(app), onError: countFailures(app.latchkey.metrics, 'signup', 'passkey') }, async (request, reply) => {
    ensureOpen();
    const flow = await webauthn.peekFlow(SIGNUP_FLOW, request.body.response.response.clientDataJSON, request.bindingHash);
    const data = signUpCeremony.parse(flow);
    const { authenticator, origin } = await webauthn.finishRegistration({
      flowType: SIGNUP_FLOW,
      bindingHash: request.bindingHash,
      response: request.body.response as RegistrationResponseJSON,
      name: data.passkeyName,
      userId: data.userId,
    });
    const now = app.latchkey.now();
    // The unique index on email_normalized settles a race between two sign-ups for one address.
    const user = await store.transaction(async (tx) => {
      if (await tx.users.findByEmail(data.email)) throw appError('email_unavailable');
      const created = await tx.users.insert({
        id: data.userId,
        email: data.email,
        email_normalized: normalizeEmail(data.email),
        display_name: data.displayName,
        status: 'enrolled',
        created_at: now,
        updated_at: now,
      });
      await tx.authenticators.insert(authenticator);
      await audit(app, request, { event: 'signup', subjectUserId: created.id, actorUserId: created.id }, tx);
      await audit(app, request, { event: 'passkey.added', subjectUserId: created.id, actorUserId: created.id, authenticatorId: authenticator.id, detail: { name: authenticator.name, ...originDetail(config, origin) } }, tx);
      return created;
    }).catch(mapUniqueViolation('email_unavailable'));
    await startSession(app, request, reply, user, undefined, authenticator.id);
    app.latchkey.metrics.ceremony('signup', 'passkey', 'success');
    return { status: 'ok', redirect: '/settings?created=1' };
  });
}
