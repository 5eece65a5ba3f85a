/**
 * Step-up: a fresh passkey check for the signed-in user, required before adding
 * or removing a passkey when the last check is older than LATCHKEY_REAUTH_MINUTES,
 * and before a service that needs a higher assurance level than the session has
 * (the check raises the session's AAL; src/oidc/interactions.tsx).
 *
 * Everyone confirms with the strongest way in they have: a passkey, else a
 * password with an authenticator app, else (their only way in is a linked work
 * account) signing in again with that account, which proves as much as the
 * sign-in that made the session and no more.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { AuthenticationResponseJSON, AuthenticatorTransportFuture } from '@simplewebauthn/server';
import { audit } from '../../audit.js';
import { requireAuth } from '../../plugins/sessions.js';
import { AuthenticationResponseSchema } from '../../webauthn/schemas.js';
import { renderPage } from '../../views/render.js';
import { html } from '../../http/replies.js';
import { auditFailure } from '../signin/routes.js';
import { ReauthPage } from './views.js';
import { AppError, appError, type ErrorCode, type FieldError } from '../../errors.js';
import { wantsHtml } from '../../plugins/errorHandler.js';
import { sendOnward } from '../../views/continuePage.js';
import { checkPasswordAlone, checkPasswordAndCode } from '../../strategies/password/routes.js';
import { passwordStanding } from '../../strategies/password/passwordStanding.js';
import { checkSigninAllowed, recordSigninFailure, recordSigninSuccess } from '../../strategies/throttle.js';
import type { UpstreamLogin } from '../../strategies/linkedAccount/linkedAccounts.js';
import { LINKED_ACCOUNT_TYPE } from '../../strategies/linkedAccount/kind.js';
import { PASSKEY_TYPE } from '../../strategies/passkey/kind.js';
import type { KindRegistry } from '../../strategies/kindRegistry.js';
import type { Config } from '../../config/index.js';
import type { Authenticator, User } from '../../db/schema.js';
import { Csrf } from '../../http/schemas.js';
import { originDetail } from '../../webauthn/allowedOrigins.js';

export const REAUTH_FLOW = 'reauth';
/** The level a service's step-up needs: '3' offers only the passkeys that give AAL3 (attested security keys). */
const Need = Type.Optional(Type.Union([Type.Literal('1'), Type.Literal('2'), Type.Literal('3')]));
const VerifyBody = Type.Object({ response: AuthenticationResponseSchema, need: Need });
const OptionsBody = Type.Object({ need: Need }, { additionalProperties: false });
const PageQuery = Type.Object({ next: Type.Optional(Type.String({ maxLength: 200 })), need: Need });
const ProviderParams = Type.Object({ provider: Type.String({ pattern: '^[a-z0-9-]{1,32}$' }) });
const PasswordBody = Type.Object({
  ...Csrf,
  password: Type.Optional(Type.String({ maxLength: 1000 })),
  code: Type.Optional(Type.String({ maxLength: 100 })),
});

/** Only local paths: an open redirect would let another site borrow our sign-in. */
export function safeNext(next: string | undefined): string {
  return next && /^\/[A-Za-z0-9/_\-?=&.]*$/.test(next) && !next.startsWith('//') ? next : '/settings';
}

/**
 * The upstream providers a person may confirm it is them with: only when a linked work account is all they have (no
 * passkey, no password + app), and only providers still configured. Someone with a passkey or an app uses that.
 */
export function linkedAccountReauthProviders(kinds: KindRegistry, config: Config, user: User, authenticators: Authenticator[]): { id: string; name: string }[] {
  const linked = kinds.stepUpCandidates(user, authenticators).filter((a) => a.type === LINKED_ACCOUNT_TYPE);
  const ids = new Set(linked.map((a) => kinds.configOf<{ provider: string }>(a)?.provider));
  return config.upstreamProviders.filter((p) => ids.has(p.id)).map((p) => ({ id: p.id, name: p.name }));
}

/**
 * Back from the upstream provider with purpose `reauth` (src/strategies/linkedAccount/routes.tsx): the account that
 * signed in there must be the one linked to this session's person, and one they may confirm with; then the session's
 * check is fresh (its level never goes down) and the person goes on to `next`.
 */
export async function finishLinkedAccountReauth(
  app: FastifyInstance,
  request: FastifyRequest,
  reply: FastifyReply,
  result: UpstreamLogin,
  found: { authenticator: Authenticator; user: User } | undefined,
): Promise<FastifyReply> {
  const { config, store, now } = app.latchkey;
  const auth = requireAuth(request);
  const offered = linkedAccountReauthProviders(app.latchkey.kinds, config, auth.user, await store.authenticators.listForUser(auth.user.id)).some((p) => p.id === result.provider.id);
  if (!found || found.user.id !== auth.user.id || !offered) {
    const reason = !found ? 'not_linked' : found.user.id !== auth.user.id ? 'another_profile' : 'not_offered';
    app.latchkey.metrics.ceremony('reauth', 'linked_account', 'upstream');
    await audit(app, request, { event: 'reauth.failed', outcome: 'failure', subjectUserId: auth.user.id, detail: { method: 'linked-account', provider: result.provider.id, reason } });
    throw appError('reauth_linked_account_mismatch', `That is not the ${result.provider.name} account linked to your profile. Sign in again with your own ${result.provider.name} account.`);
  }
  const t = now();
  await store.transaction(async (tx) => {
    await tx.sessions.stepUp(auth.session.id_hash, t, app.latchkey.kinds.signInAal(found.authenticator, auth.user), found.authenticator.id);
    await tx.authenticators.recordUse(found.authenticator.id, { counter: 0, backedUp: false, backupEligible: false, at: t });
    await audit(app, request, { event: 'reauth', subjectUserId: auth.user.id, authenticatorId: found.authenticator.id, detail: { method: 'linked-account', provider: result.provider.id } }, tx);
  });
  app.latchkey.metrics.ceremony('reauth', 'linked_account', 'success');
  return reply.redirect(safeNext(result.returnTo), 303);
}

export async function reauthRoutes(app: FastifyInstance) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const { config, store, webauthn, now } = app.latchkey;

  /** The passkeys a step-up may use: for AAL3, only those that give it. */
  const passkeysFor = (user: User, authenticators: Authenticator[], need: string | undefined) =>
    authenticators.filter((a) => a.type === PASSKEY_TYPE && (need !== '3' || app.latchkey.kinds.assuranceOf(a, user)?.aal === 3));

  r.get('/settings/reauth', { schema: { querystring: PageQuery } }, async (request, reply) => {
    const auth = requireAuth(request);
    const authenticators = await store.authenticators.listForUser(auth.user.id);
    const need = request.query.need;
    const usable = passkeysFor(auth.user, authenticators, need);
    // AAL3 is a security key's alone: a password and app, or a work account, can't give it.
    const linked = need === '3' ? [] : linkedAccountReauthProviders(app.latchkey.kinds, config, auth.user, authenticators);
    return reply
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .send(
        renderPage(
          <ReauthPage
            config={config}
            csrfToken={request.csrfToken}
            user={auth.user}
            next={safeNext(request.query.next)}
            hasPasskey={usable.length > 0}
            password={need === '3' ? undefined : passwordStanding(app.latchkey.kinds, config, auth.user, authenticators).reauth}
            linkedProviders={linked}
            {...(need === '3' ? { securityKeys: usable.map((a) => a.name) } : {})}
          />,
        ),
      );
  });

  // "Sign in again with <provider>": the linked-account sign-in, for this person, back to `next` (checked again there).
  r.get(
    '/reauth/linked/:provider',
    { schema: { params: ProviderParams, querystring: PageQuery } },
    async (request, reply) => {
      const auth = requireAuth(request);
      const linked = app.latchkey.linkedAccounts;
      const offered = linkedAccountReauthProviders(app.latchkey.kinds, config, auth.user, await store.authenticators.listForUser(auth.user.id));
      if (!offered.some((p) => p.id === request.params.provider)) {
        throw appError('not_found', 'You cannot confirm it is you that way. Go back and use one of the ways offered.');
      }
      const url = await linked.start(request.params.provider, { purpose: 'reauth', bindingHash: request.bindingHash, returnTo: safeNext(request.query.next) });
      return reply.redirect(url, 303);
    },
  );

  // For people who sign in with a password and an authenticator app.
  r.post(
    '/reauth/password',
    { schema: { querystring: PageQuery, body: PasswordBody } },
    async (request, reply) => {
      const auth = requireAuth(request);
      const next = safeNext(request.query.next);
      const t = now();
      const hasPasskey = (await store.authenticators.countForUser(auth.user.id)) > 0;
      const password = passwordStanding(app.latchkey.kinds, config, auth.user, await store.authenticators.listForUser(auth.user.id)).reauth;
      // A code, when sent, is checked (the app path): were it ignored, a wrong one would pass as a password alone.
      const method = password === 'alone' && !(request.body.code ?? '').trim() ? 'password' : 'password+totp';
      const refuse = (status: number, error: string, code: ErrorCode = 'signin_failed', fields: FieldError[] = []) => {
        if (!wantsHtml(request)) throw appError(code, error);
        const page = <ReauthPage config={config} csrfToken={request.csrfToken} user={auth.user} next={next} hasPasskey={hasPasskey} password={password} {...(fields.length ? { fields } : { error })} />;
        return html(reply, renderPage(page), status);
      };
      try {
        checkSigninAllowed(auth.user, t);
      } catch (err) {
        if (err instanceof AppError) return refuse(err.status, err.message, err.code);
        throw err;
      }
      const used =
        method === 'password'
          ? await checkPasswordAlone(store, app.latchkey.kinds, auth.user, request.body.password ?? '')
          : await checkPasswordAndCode(store, app.latchkey.secretBox, auth.user, request.body.password ?? '', request.body.code ?? '', t);
      if (!used) {
        await recordSigninFailure(store, auth.user.id, t);
        app.latchkey.metrics.ceremony('reauth', method === 'password' ? 'password' : 'password_totp', 'wrong_secret');
        await audit(app, request, { event: 'reauth.failed', outcome: 'failure', subjectUserId: auth.user.id, detail: { method } });
        const wrong = method === 'password' ? 'The password is not right. Check it and try again.' : 'The password or code is not right. Check them and try again.';
        return refuse(400, wrong, 'signin_failed', [{ field: 'password', message: wrong }]);
      }
      await store.transaction(async (tx) => {
        await recordSigninSuccess(tx, auth.user.id);
        // An app's use is recorded with its code's time step (checkPasswordAndCode); a password alone's here.
        if (method === 'password') await tx.authenticators.recordUse(used.authenticatorId, { counter: 0, backedUp: false, backupEligible: false, at: t });
        await tx.sessions.stepUp(auth.session.id_hash, t, app.latchkey.kinds.signInAal(used.authenticator, auth.user), used.authenticatorId);
        await audit(app, request, { event: 'reauth', subjectUserId: auth.user.id, authenticatorId: used.authenticatorId, detail: { method } }, tx);
      });
      app.latchkey.metrics.ceremony('reauth', method === 'password' ? 'password' : 'password_totp', 'success');
      return sendOnward(reply, config, request.csrfToken, next);
    },
  );

  r.post('/reauth/options', { schema: { body: OptionsBody } }, async (request) => {
    const auth = requireAuth(request);
    const passkeys = passkeysFor(auth.user, await store.authenticators.listForUser(auth.user.id), request.body.need);
    const options = await webauthn.startAuthentication({
      flowType: REAUTH_FLOW,
      bindingHash: request.bindingHash,
      userId: auth.user.id,
      allowCredentials: passkeys.map((a) => ({ id: a.credential_id, transports: JSON.parse(a.transports) as AuthenticatorTransportFuture[] })),
    });
    return { options };
  });

  r.post('/reauth/verify', { schema: { body: VerifyBody } }, async (request) => {
    const auth = requireAuth(request);
    await webauthn.finishAuthentication({
      flowType: REAUTH_FLOW,
      bindingHash: request.bindingHash,
      response: request.body.response as AuthenticationResponseJSON,
      onFailure: (f) => {
        app.latchkey.metrics.ceremonyFailed('reauth', 'passkey', f.code);
        return auditFailure(app, request, 'reauth.failed', { ...f, userId: f.userId ?? auth.user.id });
      },
      acceptFlow: (flow) => flow.user_id === auth.user.id,
      complete: async (tx, { authenticator, origin }) => {
        await tx.sessions.stepUp(auth.session.id_hash, now(), app.latchkey.kinds.signInAal(authenticator, auth.user), authenticator.id);
        await audit(app, request, { event: 'reauth', subjectUserId: auth.user.id, authenticatorId: authenticator.id, ...(app.latchkey.config.relatedOrigins.length > 0 ? { detail: originDetail(app.latchkey.config, origin) } : {}) }, tx);
      },
    });
    app.latchkey.metrics.ceremony('reauth', 'passkey', 'success');
    return { status: 'ok' };
  });
}
