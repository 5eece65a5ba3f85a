/**
 * Sign in with email + password + authenticator-app code, one form (seed 001:
 * "you'll need to use both a password and a code from the app"). AAL2, not
 * phishing-resistant. With LATCHKEY_PASSWORD_SIGNIN=alone the code is
 * optional: left blank, the password signs in on its own (AAL1) for someone
 * who set one to sign in with alone (the password kind). Every wrong answer —
 * unknown email, wrong password, wrong or reused code, no password to sign in
 * with alone — is the same message; failures count towards the account's
 * throttle, or an unknown address's, which answers the same
 * (strategies/throttle.ts); a success resets it.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { rateLimited } from '../../plugins/rateLimited.js';
import { audit } from '../../audit.js';
import { AppError, appError, validationFailed, type ErrorCode, type FieldError } from '../../errors.js';
import { wantsHtml } from '../../plugins/errorHandler.js';
import { startSession } from '../../plugins/sessions.js';
import { readKindConfig } from '../authenticatorKind.js';
import { TOTP_TYPE, totpKind } from '../totp/kind.js';
import type { KindRegistry } from '../kindRegistry.js';
import { sendOnward } from '../../views/continuePage.js';
import { renderPage } from '../../views/render.js';
import { html } from '../../http/replies.js';
import { PasswordSignInPage } from './views.js';
import { safeNext } from '../../flows/signin/routes.js';
import { afterNonPasskeySignIn } from '../../flows/passkeyUpgrade/afterNonPasskeySignIn.js';
import { verifyPassword } from './passwords.js';
import { checkTotp } from '../totp/totp.js';
import { PASSWORD_TYPE } from './kind.js';
import { checkSigninAllowed, loadSigninThrottle, recordSigninSuccess } from '../throttle.js';
import type { Store } from '../../db/store.js';
import type { Authenticator, User } from '../../db/schema.js';
import type { SecretBox } from '../../secretBox.js';
import { Csrf } from '../../http/schemas.js';

const Body = Type.Object({
  ...Csrf,
  email: Type.Optional(Type.String({ maxLength: 2000 })),
  password: Type.Optional(Type.String({ maxLength: 1000 })),
  code: Type.Optional(Type.String({ maxLength: 100 })),
});
const Query = Type.Object({ next: Type.Optional(Type.String({ maxLength: 512 })), email: Type.Optional(Type.String({ maxLength: 254 })) });

/**
 * Check a password and an app code together; on success the code's time step is
 * recorded (a code works once, even against a concurrent attempt) and the app
 * used is returned. The password is checked even without an account (against
 * a dummy hash), so an unknown email takes the same time.
 */
export async function checkPasswordAndCode(
  store: Store,
  secretBox: SecretBox,
  user: User | undefined,
  password: string,
  code: string,
  now: number,
): Promise<{ authenticatorId: string; authenticator: Authenticator } | undefined> {
  const passwordOk = await verifyPassword(user?.password_hash ?? null, password);
  // Looked up without an account too (under an id no user has), so both take the same queries.
  const apps = (await store.authenticators.listForUser(user?.id ?? '')).filter((a) => a.type === TOTP_TYPE);
  let used: { authenticator: Authenticator; step: number; sealedSecret: string } | undefined;
  for (const a of apps) {
    const config = readKindConfig(totpKind, a);
    if (!config) continue;
    const step = checkTotp(secretBox.open(config.sealedSecret, `totp:${a.id}`), code, now, config.lastStep);
    if (step !== undefined) used = { authenticator: a, step, sealedSecret: config.sealedSecret };
  }
  if (!user || !passwordOk || !used) return undefined;
  // Compare and set on the stored step: of two sign-ins with the same code, one wins.
  const next = JSON.stringify({ sealedSecret: used.sealedSecret, lastStep: used.step });
  if (!(await store.authenticators.swapConfig(used.authenticator.id, used.authenticator.config, next, now))) return undefined;
  return { authenticatorId: used.authenticator.id, authenticator: used.authenticator };
}

/**
 * Check a password that signs in on its own: the person's password row (the password kind), which signs in only
 * while its kind says so (LATCHKEY_PASSWORD_SIGNIN=alone). As checkPasswordAndCode, the password is checked and the
 * rows looked up with or without an account, so every failure takes the same work.
 */
export async function checkPasswordAlone(
  store: Store,
  kinds: KindRegistry,
  user: User | undefined,
  password: string,
): Promise<{ authenticatorId: string; authenticator: Authenticator } | undefined> {
  const passwordOk = await verifyPassword(user?.password_hash ?? null, password);
  const row = (await store.authenticators.listForUser(user?.id ?? '')).find((a) => a.type === PASSWORD_TYPE);
  if (!user || !passwordOk || !row || !kinds.assuranceOf(row, user)) return undefined;
  return { authenticatorId: row.id, authenticator: row };
}

export async function passwordSignInRoutes(app: FastifyInstance) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const { config, store, now, secretBox, secret, kinds } = app.latchkey;
  const alone = config.passwordSignIn === 'alone';

  /** The page again with what went wrong; a client that asked for JSON gets the error as JSON instead. */
  const page = (request: FastifyRequest, reply: FastifyReply, status: number, email: string, error: string | undefined, fields: FieldError[] = [], code: ErrorCode = 'signin_failed') => {
    if (status >= 400 && !wantsHtml(request)) {
      throw fields.length ? validationFailed(fields) : appError(code, error);
    }
    return html(
      reply,
      renderPage(<PasswordSignInPage config={config} csrfToken={request.csrfToken} next={safeNext((request.query as { next?: string }).next)} error={error} fields={fields} email={email} />),
      status,
    );
  };

  r.get('/signin/password', { schema: { querystring: Query } }, async (request, reply) => {
    if (request.auth) return reply.redirect(safeNext(request.query.next) ?? '/settings');
    // An OpenID Connect service's login_hint arrives here through /signin's link.
    return page(request, reply, 200, request.query.email ?? '', undefined);
  });

  r.post(
    '/signin/password',
    { schema: { body: Body, querystring: Query }, ...rateLimited(app) },
    async (request, reply) => {
      const email = (request.body.email ?? '').trim();
      const password = request.body.password ?? '';
      const code = request.body.code ?? '';
      // A code, when sent, is checked (the app path, AAL2): were it ignored, a wrong one would pass as a password alone.
      const method = alone && !code.trim() ? 'password' : 'password+totp';
      const metricsMethod = method === 'password' ? 'password' : 'password_totp';
      const missing: FieldError[] = [];
      if (!email) missing.push({ field: 'email', message: 'Enter your email address' });
      if (!password) missing.push({ field: 'password', message: 'Enter your password' });
      if (method === 'password+totp' && !code.trim()) missing.push({ field: 'code', message: 'Enter the code from your authenticator app' });
      if (missing.length) return page(request, reply, 400, email, undefined, missing);

      const t = now();
      const user = await store.users.findByEmail(email);
      // An address without an account is counted and throttled as an account is (strategies/throttle.ts).
      const throttle = await loadSigninThrottle(store, secret, email, user, t);
      try {
        checkSigninAllowed(throttle.failures, t);
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        app.latchkey.metrics.ceremonyFailed('signin', metricsMethod, err.code);
        await audit(app, request, { event: 'signin.failed', outcome: 'failure', subjectUserId: user?.id ?? null, actorUserId: null, detail: { method, code: err.code } });
        return page(request, reply, err.status, email, err.message, [], err.code);
      }
      const used =
        method === 'password'
          ? await checkPasswordAlone(store, kinds, user, password)
          : await checkPasswordAndCode(store, secretBox, user, password, code, t);
      const recorded = !!used && user!.status !== 'suspended';
      if (!recorded) {
        await throttle.recordFailure(t);
        app.latchkey.metrics.ceremonyFailed('signin', metricsMethod, user?.status === 'suspended' ? 'account_disabled' : 'signin_failed');
        await audit(app, request, {
          event: 'signin.failed',
          outcome: 'failure',
          subjectUserId: user?.id ?? null,
          actorUserId: null,
          detail: { method, code: user?.status === 'suspended' ? 'account_disabled' : 'signin_failed' },
        });
        return page(request, reply, 400, email, appError('signin_failed').message);
      }
      await store.transaction(async (tx) => {
        await recordSigninSuccess(tx, user!.id);
        // An app's use is recorded with its code's time step (checkPasswordAndCode); a password alone's here.
        if (method === 'password') await tx.authenticators.recordUse(used!.authenticatorId, { counter: 0, backedUp: false, backupEligible: false, at: t });
        await startSession(app, request, reply, user!, tx, used!.authenticatorId, kinds.signInAal(used!.authenticator, user!));
        await audit(app, request, { event: 'signin', subjectUserId: user!.id, actorUserId: user!.id, authenticatorId: used!.authenticatorId, detail: { method } }, tx);
      });
      app.latchkey.metrics.ceremony('signin', metricsMethod, 'success');
      const next = safeNext(request.query.next);
      const upgrade = await afterNonPasskeySignIn(app, user!, kinds.signInAal(used!.authenticator, user!), next);
      if (upgrade) return reply.redirect(upgrade, 303);
      return sendOnward(reply, config, request.csrfToken, next ?? '/settings');
    },
  );
}
