/**
 * Sign in with a passkey three ways (seed 004 "How to log in with a passkey"):
 * the "Sign in with a passkey" button (discoverable credential, no username),
 * autofill on the email field (conditional mediation), and email first
 * (allowCredentials). User verification is required for every one.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { rateLimited } from '../../plugins/rateLimited.js';
import { audit } from '../../audit.js';
import { appError } from '../../errors.js';
import { startSession } from '../../plugins/sessions.js';
import { AuthenticationResponseSchema, EmailSchema } from '../../webauthn/schemas.js';
import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import { decoyAllowCredentials, realAllowCredentials } from './allowCredentials.js';
import { pageWithToken, renderPage } from '../../views/render.js';
import { SignInPage } from './views.js';
import { NoScriptForm, NoScriptQuery } from '../../views/noScript.js';
import { defineFlow } from '../flowMachine.js';
import { originDetail } from '../../webauthn/allowedOrigins.js';
import { html } from '../../http/replies.js';
import { nationalIdFormat } from '../../users/nationalId.js';
import { TOTP_TYPE } from '../../strategies/totp/kind.js';
import { PASSKEY_TYPE } from '../../strategies/passkey/kind.js';
import { SignInHelpPage, type WaysBack } from './helpViews.js';

export const SIGNIN_FLOW = 'signin';
/** The sign-in ceremony: how the person started (for the audit), and whether it is a decoy for an unknown email. */
const signInCeremony = defineFlow({
  type: SIGNIN_FLOW,
  data: Type.Object({ mode: Type.Optional(Type.String()), decoy: Type.Optional(Type.Boolean()) }),
});

const SignInQuery = Type.Object({
  ...NoScriptQuery.properties,
  next: Type.Optional(Type.String({ maxLength: 512 })),
  /** Prefills the email fields (an OpenID Connect login_hint, passed on by /interaction/:uid). */
  email: Type.Optional(Type.String({ maxLength: 254 })),
});

/** Where to go after signing in: a path on this site only (never `//host` or a scheme), else nowhere. */
export function safeNext(next: string | undefined): string | undefined {
  return next && /^\/(?![/\\])[^\s\\]*$/.test(next) ? next : undefined;
}

const HelpQuery = Type.Object({ next: SignInQuery.properties.next, email: SignInQuery.properties.email });

const OptionsBody = Type.Object({
  mode: Type.Union([Type.Literal('discoverable'), Type.Literal('autofill'), Type.Literal('email')]),
  email: Type.Optional(EmailSchema),
});
const VerifyBody = Type.Object({
  response: AuthenticationResponseSchema,
  mode: Type.Optional(Type.String({ maxLength: 16 })),
  email: Type.Optional(Type.String({ maxLength: 254 })),
});

export async function signInRoutes(app: FastifyInstance) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const { config, store, webauthn } = app.latchkey;

  const plainSignInPage = pageWithToken((csrfToken) => <SignInPage config={config} csrfToken={csrfToken} noScript={false} />);
  r.get('/signin', { schema: { querystring: SignInQuery } }, async (request, reply) => {
    const next = safeNext(request.query.next);
    if (request.auth) return reply.redirect(next ?? '/settings');
    const { nojs, email } = request.query;
    if (!next && !email && nojs !== '1') return html(reply, plainSignInPage(request.csrfToken));
    const page = <SignInPage config={config} csrfToken={request.csrfToken} noScript={request.query.nojs === '1'} next={next} emailHint={request.query.email} />;
    return html(reply, renderPage(page));
  });
  // The form posts here only when the page's script did not run.
  r.post('/signin', { schema: { body: NoScriptForm } }, async (_request, reply) => reply.redirect('/signin?nojs=1', 303));

  // "Can't use your passkey?": the ways back this deployment allows. The same page for everyone (it names no account).
  r.get('/signin/help', { schema: { querystring: HelpQuery } }, async (request, reply) => {
    const ways: WaysBack = {
      passwordAlone: config.passwordSignIn === 'alone',
      passwordAndApp: app.latchkey.kinds.get(TOTP_TYPE) !== undefined,
      linkedAccounts: config.upstreamProviders,
      nationalIdLabel: nationalIdFormat(config).label,
    };
    const page = <SignInHelpPage config={config} csrfToken={request.csrfToken} ways={ways} next={safeNext(request.query.next)} emailHint={request.query.email} />;
    return html(reply, renderPage(page));
  });

  r.post('/signin/options', { schema: { body: OptionsBody }, ...rateLimited(app) }, async (request) => {
    const { mode, email } = request.body;
    if (mode !== 'email') {
      const options = await webauthn.startAuthentication({ flowType: SIGNIN_FLOW, bindingHash: request.bindingHash, data: { mode } });
      return { options };
    }
    if (!email) throw appError('validation_failed', 'Enter your email address.', [{ field: 'email', message: 'Enter your email address' }]);
    // The same query and the same work with or without an account (the account's id and its passkeys in one
    // query, one round trip), and every address's decoy is drawn.
    const { userId, authenticators: passkeys } = await store.authenticators.listForEmail(email, PASSKEY_TYPE);
    const decoy = decoyAllowCredentials(app.latchkey.secret, email);
    // Every field but the ids is drawn from the same sets for a real account and a decoy (allowCredentials.ts).
    const allowCredentials = passkeys.length ? realAllowCredentials(passkeys) : decoy;
    const options = await webauthn.startAuthentication({
      flowType: SIGNIN_FLOW,
      bindingHash: request.bindingHash,
      // Unknown emails get a flow bound to no one who exists: any credential is then refused, with the answer and
      // after the work a real account's forged response gets (WebAuthn.finishAuthentication).
      userId: passkeys.length ? userId! : null,
      allowCredentials,
      data: { mode, decoy: passkeys.length === 0 },
    });
    return { options };
  });

  r.post('/signin/verify', { schema: { body: VerifyBody }, ...rateLimited(app) }, async (request, reply) => {
    await webauthn.finishAuthentication({
      flowType: SIGNIN_FLOW,
      bindingHash: request.bindingHash,
      response: request.body.response as AuthenticationResponseJSON,
      onFailure: (f) => {
        app.latchkey.metrics.ceremonyFailed('signin', 'passkey', f.code);
        return auditFailure(app, request, 'signin.failed', f);
      },
      // A decoy's flow (an unknown email), or one that can't be read, expects no one.
      acceptFlow: (flow) => {
        const data = signInCeremony.read(flow);
        return data !== undefined && !data.decoy;
      },
      complete: async (tx, { flow, user, authenticator, origin }) => {
        await startSession(app, request, reply, user, tx, authenticator.id, app.latchkey.kinds.signInAal(authenticator, user));
        // A success ends a run of failed sign-ins (strategies/throttle.ts); no write when there was none.
        if (user.failed_signins > 0) await tx.users.resetFailedSignins(user.id);
        await audit(
          app,
          request,
          {
            event: 'signin',
            subjectUserId: user.id,
            actorUserId: user.id,
            authenticatorId: authenticator.id,
            detail: { mode: signInCeremony.read(flow)?.mode ?? 'unknown', passkey: authenticator.name, ...originDetail(app.latchkey.config, origin) },
          },
          tx,
        );
      },
    });
    // Counted once committed: a sign-in whose transaction failed did not happen.
    app.latchkey.metrics.ceremony('signin', 'passkey', 'success');
    return { status: 'ok', redirect: '/settings' };
  });
}

/** Audit a failed passkey check; a counter that went backwards is also recorded as a possible clone. */
export async function auditFailure(
  app: FastifyInstance,
  request: FastifyRequest,
  event: string,
  f: { code: string; userId?: string; authenticatorId?: string },
): Promise<void> {
  await audit(app, request, { event, outcome: 'failure', subjectUserId: f.userId ?? null, actorUserId: null, authenticatorId: f.authenticatorId ?? null, detail: { code: f.code } });
  if (f.code === 'counter_regressed') {
    await audit(app, request, {
      event: 'passkey.counter_regressed',
      outcome: 'failure',
      subjectUserId: f.userId ?? null,
      actorUserId: null,
      authenticatorId: f.authenticatorId ?? null,
      detail: { reason: 'signature counter did not increase: possible cloned authenticator' },
    });
  }
}
