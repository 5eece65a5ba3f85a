/**
 * "Set a password" in Login and security settings, with LATCHKEY_PASSWORD_SIGNIN=alone: a password that signs in on
 * its own (seed 004: "If you do not have a passkey set up on another device, you can use your password instead").
 * It needs a check that it is the person within LATCHKEY_REAUTH_MINUTES (a passkey, for people with one), the rules
 * every new password meets (passwords.ts), and it tells the person by email, as any authenticator added does. The
 * person has one password: someone who uses one with an authenticator app changes that one. With `with-app` these
 * pages don't exist.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { audit } from '../../audit.js';
import { appError, validationFailed, type FieldError } from '../../errors.js';
import { wantsHtml } from '../../plugins/errorHandler.js';
import { hasFreshCheck, requireAuth } from '../../plugins/sessions.js';
import { renderPage } from '../../views/render.js';
import { html } from '../../http/replies.js';
import { Csrf } from '../../http/schemas.js';
import { randomToken } from '../../crypto.js';
import { isUniqueViolation } from '../../db/isUniqueViolation.js';
import { sendAuthenticatorAddedNotice } from '../../mail/sendAuthenticatorAddedNotice.js';
import { NO_PASSKEY_COLUMNS } from '../authenticatorKind.js';
import { PASSWORD_TYPE } from './kind.js';
import { passwordStanding } from './passwordStanding.js';
import { checkNewPassword, hashPassword } from './passwords.js';
import { SetPasswordPage } from './views.js';

export const SET_PASSWORD_PATH = '/settings/set-password';

const Body = Type.Object({
  ...Csrf,
  password: Type.Optional(Type.String({ maxLength: 1000 })),
  confirmPassword: Type.Optional(Type.String({ maxLength: 1000 })),
});

/** One row per person: a second "Set a password" (two tabs, a double submit) loses on the unique credential id. */
const passwordCredentialId = (userId: string) => `password:${userId}`;

export async function passwordSettingsRoutes(app: FastifyInstance) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const { config, store, now, mailer } = app.latchkey;

  /** The person, and settings' offer (passwordStanding): none once they have set a password of their own. */
  async function load(request: FastifyRequest) {
    if (config.passwordSignIn !== 'alone') throw appError('not_found');
    const auth = requireAuth(request);
    const { offer } = passwordStanding(app.latchkey.kinds, config, auth.user, await store.authenticators.listForUser(auth.user.id));
    return { auth, offer, withApp: offer === 'app' };
  }
  const reauth = (reply: FastifyReply) => reply.redirect(`/settings/reauth?next=${encodeURIComponent(SET_PASSWORD_PATH)}`, 303);

  r.get(SET_PASSWORD_PATH, async (request, reply) => {
    const { auth, offer, withApp } = await load(request);
    // Already set: changing it is the change-password page's job.
    if (!offer) return reply.redirect('/settings/password', 303);
    if (!(await hasFreshCheck(app, request))) return reauth(reply);
    return html(reply, renderPage(<SetPasswordPage config={config} csrfToken={request.csrfToken} user={auth.user} withApp={withApp} errors={[]} />));
  });

  r.post(SET_PASSWORD_PATH, { schema: { body: Body } }, async (request, reply) => {
    const { auth, offer, withApp } = await load(request);
    if (!offer) return reply.redirect('/settings/password', 303);
    if (!(await hasFreshCheck(app, request))) {
      if (!wantsHtml(request)) throw appError('reauth_required', 'For your security, confirm it is you before you set a password.');
      return reauth(reply);
    }
    const password = request.body.password ?? '';
    const errors: FieldError[] = [];
    const problem = password ? checkNewPassword(password, { email: auth.user.email, displayName: auth.user.display_name }) : 'Enter a password';
    if (problem) errors.push({ field: 'password', message: problem });
    else if ((request.body.confirmPassword ?? '') !== password) errors.push({ field: 'confirmPassword', message: 'The passwords do not match' });
    if (errors.length) {
      if (!wantsHtml(request)) throw validationFailed(errors);
      return html(reply, renderPage(<SetPasswordPage config={config} csrfToken={request.csrfToken} user={auth.user} withApp={withApp} errors={errors} />), 400);
    }
    const hash = await hashPassword(password);
    const t = now();
    const id = randomToken(16);
    try {
      await store.transaction(async (tx) => {
        await tx.users.setPasswordHash(auth.user.id, hash, t);
        await tx.authenticators.insert({
          id,
          user_id: auth.user.id,
          type: PASSWORD_TYPE,
          credential_id: passwordCredentialId(auth.user.id),
          ...NO_PASSKEY_COLUMNS,
          config: app.latchkey.kinds.serializeConfig(PASSWORD_TYPE, {}),
          name: 'Password',
          created_at: t,
          last_used_at: null,
        });
        await audit(app, request, { event: 'password.set', subjectUserId: auth.user.id, authenticatorId: id, detail: { withApp } }, tx);
      });
    } catch (err) {
      // Set a moment ago from another tab: that one stands (this transaction, hash included, rolled back).
      if (isUniqueViolation(err)) return reply.redirect('/settings', 303);
      throw err;
    }
    await sendAuthenticatorAddedNotice(
      { mailer, config, log: request.log },
      auth.user,
      { what: 'password', how: 'It was set in your Login and security settings, and you can sign in with it on its own.' },
      t,
    );
    return reply.redirect('/settings?passwordset=1', 303);
  });
}
