/**
 * Step-up: a fresh passkey check for the signed-in user, required before adding
 * or removing a passkey when the last check is older than LATCHKEY_REAUTH_MINUTES,
 * and before a service that needs a higher assurance level than the session has
 * (the check raises the session's AAL; src/oidc/interactions.tsx).
 */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from 'typebox';
import type { AuthenticationResponseJSON, AuthenticatorTransportFuture } from '@simplewebauthn/server';
import { audit } from '../../audit.js';
import { requireAuth } from '../../plugins/sessions.js';
import { AuthenticationResponseSchema } from '../../webauthn/schemas.js';
import { renderPage } from '../../views/render.js';
import { auditFailure } from '../signin/routes.js';
import { ReauthPage } from './views.js';
import { AppError, appError, type ErrorCode } from '../../errors.js';
import { wantsHtml } from '../../plugins/errorHandler.js';
import { assessSignIn, methodOf } from '../../oidc/assurance.js';
import { leadsToService, sendContinuePage } from '../../views/continuePage.js';
import { checkPasswordAndCode } from '../../strategies/password/routes.js';
import { checkSigninAllowed, recordSigninFailure, recordSigninSuccess } from '../../strategies/throttle.js';

export const REAUTH_FLOW = 'reauth';
const VerifyBody = Type.Object({ response: AuthenticationResponseSchema });
const OptionsBody = Type.Object({}, { additionalProperties: false });
const PageQuery = Type.Object({ next: Type.Optional(Type.String({ maxLength: 200 })) });
const PasswordBody = Type.Object({
  _csrf: Type.Optional(Type.String({ maxLength: 200 })),
  password: Type.Optional(Type.String({ maxLength: 1000 })),
  code: Type.Optional(Type.String({ maxLength: 100 })),
});

/** Only local paths: an open redirect would let another site borrow our sign-in. */
export function safeNext(next: string | undefined): string {
  return next && /^\/[A-Za-z0-9/_\-?=&.]*$/.test(next) && !next.startsWith('//') ? next : '/settings';
}

export async function reauthRoutes(app: FastifyInstance) {
  const { config, store, webauthn, now } = app.latchkey;

  app.get<{ Querystring: Static<typeof PageQuery> }>('/settings/reauth', { schema: { querystring: PageQuery } }, async (request, reply) => {
    const auth = requireAuth(request);
    const hasPasskey = (await store.authenticators.countForUser(auth.user.id)) > 0;
    return reply
      .type('text/html; charset=utf-8')
      .send(renderPage(<ReauthPage config={config} csrfToken={request.csrfToken} user={auth.user} next={safeNext(request.query.next)} hasPasskey={hasPasskey} />));
  });

  // For people who sign in with a password and an authenticator app.
  app.post<{ Querystring: Static<typeof PageQuery>; Body: Static<typeof PasswordBody> }>(
    '/reauth/password',
    { schema: { querystring: PageQuery, body: PasswordBody } },
    async (request, reply) => {
      const auth = requireAuth(request);
      const next = safeNext(request.query.next);
      const t = now();
      const hasPasskey = (await store.authenticators.countForUser(auth.user.id)) > 0;
      const refuse = (status: number, error: string, code: ErrorCode = 'signin_failed') => {
        if (!wantsHtml(request)) throw appError(code, error);
        return reply
          .status(status)
          .type('text/html; charset=utf-8')
          .send(renderPage(<ReauthPage config={config} csrfToken={request.csrfToken} user={auth.user} next={next} hasPasskey={hasPasskey} error={error} />));
      };
      try {
        checkSigninAllowed(auth.user, t);
      } catch (err) {
        if (err instanceof AppError) return refuse(err.status, err.message, err.code);
        throw err;
      }
      const used = await checkPasswordAndCode(store, app.latchkey.secretBox, auth.user, request.body.password ?? '', request.body.code ?? '', t);
      if (!used) {
        await recordSigninFailure(store, auth.user.id, t);
        await audit(app, request, { event: 'reauth.failed', outcome: 'failure', subjectUserId: auth.user.id, detail: { method: 'password+totp' } });
        return refuse(400, 'The password or code is not right. Check them and try again.');
      }
      await recordSigninSuccess(store, auth.user.id);
      await store.sessions.stepUp(auth.session.id_hash, t, assessSignIn({ kind: 'password+otp' }).aal, used.authenticatorId);
      await audit(app, request, { event: 'reauth', subjectUserId: auth.user.id, authenticatorId: used.authenticatorId, detail: { method: 'password+totp' } });
      if (leadsToService(next)) return sendContinuePage(reply, config, request.csrfToken, next);
      return reply.redirect(next, 303);
    },
  );

  app.post('/reauth/options', { schema: { body: OptionsBody } }, async (request) => {
    const auth = requireAuth(request);
    const passkeys = (await store.authenticators.listForUser(auth.user.id)).filter((a) => a.type === 'passkey');
    const options = await webauthn.startAuthentication({
      flowType: REAUTH_FLOW,
      bindingHash: request.bindingHash,
      userId: auth.user.id,
      allowCredentials: passkeys.map((a) => ({ id: a.credential_id, transports: JSON.parse(a.transports) as AuthenticatorTransportFuture[] })),
    });
    return { options };
  });

  app.post<{ Body: Static<typeof VerifyBody> }>('/reauth/verify', { schema: { body: VerifyBody } }, async (request) => {
    const auth = requireAuth(request);
    await webauthn.finishAuthentication({
      flowType: REAUTH_FLOW,
      bindingHash: request.bindingHash,
      response: request.body.response as AuthenticationResponseJSON,
      onFailure: (f) => auditFailure(app, request, 'reauth.failed', { ...f, userId: f.userId ?? auth.user.id }),
      acceptFlow: (flow) => flow.user_id === auth.user.id,
      complete: async (tx, { authenticator }) => {
        await tx.sessions.stepUp(auth.session.id_hash, now(), assessSignIn(methodOf(authenticator)).aal, authenticator.id);
        await audit(app, request, { event: 'reauth', subjectUserId: auth.user.id, authenticatorId: authenticator.id }, tx);
      },
    });
    return { status: 'ok' };
  });
}
