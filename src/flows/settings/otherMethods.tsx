/**
 * Settings for sign-in methods other than passkeys: add an authenticator app
 * or a work account (the self-service flow, from its choice of type: the
 * person is signed in and has just confirmed it is them), remove one, and
 * change the password used with an app. Every change needs a check within
 * LATCHKEY_REAUTH_MINUTES (after which adding carries on where it was going);
 * nobody can remove their last way to sign in.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { audit } from '../../audit.js';
import { appError, type FieldError } from '../../errors.js';
import { hasFreshCheck, requireAuth } from '../../plugins/sessions.js';
import { renderPage } from '../../views/render.js';
import { html } from '../../http/replies.js';
import { Csrf } from '../../http/schemas.js';
import { ConfirmCheckbox, CsrfField, ErrorSummary, Layout } from '../../views/layout.js';
import type { Authenticator, User } from '../../db/schema.js';
import type { Config } from '../../config/index.js';
import { startVerifiedFlow } from '../selfService/routes.js';
import { InteractionUid, serviceWaitingAt } from '../../oidc/interactions.js';
import { checkNewPassword, hashPassword } from '../../strategies/password/passwords.js';
import { passwordStanding, type PasswordStanding } from '../../strategies/password/passwordStanding.js';

const Params = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' }) });
const AddBody = Type.Object({ ...Csrf, interaction: Type.Optional(InteractionUid) });
const AddQuery = Type.Object({ interaction: Type.Optional(InteractionUid) });
const RemoveBody = Type.Object({ ...Csrf, confirm: Type.Optional(Type.String({ maxLength: 16 })) });
const PasswordBody = Type.Object({ ...Csrf, password: Type.Optional(Type.String({ maxLength: 1000 })), confirmPassword: Type.Optional(Type.String({ maxLength: 1000 })) });

export async function otherMethodsRoutes(app: FastifyInstance) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const { config, store, now, kinds } = app.latchkey;
  const reauth = (reply: FastifyReply, next: string) => reply.redirect(`/settings/reauth?next=${encodeURIComponent(next)}`, 303);

  /**
   * Start adding an app or a work account, or first confirm it is them and then come back here: `next` after that
   * check is this route's GET, with the service's interaction uid, so the add flow (and its return to the service)
   * carries on rather than leaving the person on the service's step-up page again.
   */
  async function startAdding(request: FastifyRequest, reply: FastifyReply, interaction: string | undefined) {
    const auth = requireAuth(request);
    // Sent by a service's step-up page (src/oidc/interactions.tsx): back to that sign-in when done. Only an
    // interaction the provider knows, by its local path; anything else is the plain settings journey.
    const back = interaction ? await serviceWaitingAt(app.latchkey.oidc, interaction) : undefined;
    if (!(await hasFreshCheck(app, request))) {
      return reauth(reply, back && interaction ? `/settings/add-authenticator?interaction=${interaction}` : '/settings/add-authenticator');
    }
    const flowId = await startVerifiedFlow(store, request.bindingHash, auth.user, now(), back);
    return reply.redirect(`/add-authenticator/${flowId}/choose`, 303);
  }

  r.post('/settings/add-authenticator', { schema: { body: AddBody } }, (request, reply) =>
    startAdding(request, reply, request.body.interaction),
  );
  // Where the check that it is them continues to. It only opens the choice of what to add (a flow record bound to this
  // browser, which expires unused): nothing about the account changes until the person adds something.
  r.get('/settings/add-authenticator', { schema: { querystring: AddQuery } }, (request, reply) =>
    startAdding(request, reply, request.query.interaction),
  );

  /** Whether removing `authenticator` would leave the person nothing that signs them in (KindRegistry.waysIn). */
  const isLastWayIn = (user: User, authenticators: Authenticator[], authenticator: Authenticator) => !kinds.waysIn(user, authenticators).some((a) => a.id !== authenticator.id);

  async function load(request: FastifyRequest & { params: Static<typeof Params> }) {
    const auth = requireAuth(request);
    const found = await store.authenticators.findForUser(auth.user.id, request.params.id);
    if (!found || kinds.get(found.type)?.settingsSection === 'passkeys') throw appError('not_found', 'That sign-in method was not found. It may already have been removed.');
    return { auth, authenticator: found, isLast: isLastWayIn(auth.user, await store.authenticators.listForUser(auth.user.id), found) };
  }

  r.get('/settings/authenticators/:id/remove', { schema: { params: Params } }, async (request, reply) => {
    const { auth, authenticator, isLast } = await load(request);
    if (!isLast && !(await hasFreshCheck(app, request))) return reauth(reply, `/settings/authenticators/${authenticator.id}/remove`);
    return html(reply, renderPage(<RemoveMethodPage config={config} csrfToken={request.csrfToken} user={auth.user} authenticator={authenticator} removeWarning={kinds.get(authenticator.type)?.removeWarning} isLast={isLast} />));
  });

  r.post(
    '/settings/authenticators/:id/remove',
    { schema: { params: Params, body: RemoveBody } },
    async (request, reply) => {
      const { auth, authenticator, isLast } = await load(request);
      const page = (status: number, error: string, last = isLast) =>
        html(reply, renderPage(<RemoveMethodPage config={config} csrfToken={request.csrfToken} user={auth.user} authenticator={authenticator} removeWarning={kinds.get(authenticator.type)?.removeWarning} isLast={last} error={error} />), status);
      const lastWayIn = () => page(409, 'You cannot remove your only way to sign in. Add a passkey or another method first.', true);
      if (isLast) return lastWayIn();
      if (!(await hasFreshCheck(app, request))) return reauth(reply, `/settings/authenticators/${authenticator.id}/remove`);
      if (request.body.confirm !== 'yes') return page(400, 'Select the box to confirm you want to remove it');
      const removed = await store.transaction(async (tx) => {
        // As for passkeys (settings/routes.tsx): writing the user row first serialises concurrent removals for one
        // person, so two can't each see another way in and leave none.
        await tx.users.setStatus(auth.user.id, auth.user.status, now());
        if (isLastWayIn(auth.user, await tx.authenticators.listForUser(auth.user.id), authenticator)) return false;
        await tx.authenticators.remove(auth.user.id, authenticator.id);
        await tx.sessions.deleteForAuthenticator(auth.user.id, authenticator.id);
        await kinds.removed(tx, auth.user, authenticator, now());
        await audit(app, request, { event: 'authenticator.removed_by_user', subjectUserId: auth.user.id, authenticatorId: authenticator.id, detail: { type: authenticator.type, name: authenticator.name } }, tx);
        return true;
      });
      if (!removed) return lastWayIn();
      return reply.redirect('/settings?unlinked=1', 303);
    },
  );

  /** How the person uses their password, for the page's words: on its own, with an app, or both. */
  const passwordUse = async (user: User): Promise<PasswordUse> => passwordStanding(kinds, config, user, await store.authenticators.listForUser(user.id));
  const noPassword = () => appError('not_found', 'You have no password to change.');

  r.get('/settings/password', async (request, reply) => {
    const auth = requireAuth(request);
    if (!auth.user.password_hash) throw noPassword();
    if (!(await hasFreshCheck(app, request))) return reauth(reply, '/settings/password');
    return html(reply, renderPage(<ChangePasswordPage config={config} csrfToken={request.csrfToken} user={auth.user} use={await passwordUse(auth.user)} errors={[]} />));
  });

  r.post('/settings/password', { schema: { body: PasswordBody } }, async (request, reply) => {
    const auth = requireAuth(request);
    if (!auth.user.password_hash) throw noPassword();
    if (!(await hasFreshCheck(app, request))) return reauth(reply, '/settings/password');
    const password = request.body.password ?? '';
    const errors: FieldError[] = [];
    const problem = password ? checkNewPassword(password, { email: auth.user.email, displayName: auth.user.display_name }) : 'Enter a new password';
    if (problem) errors.push({ field: 'password', message: problem });
    else if ((request.body.confirmPassword ?? '') !== password) errors.push({ field: 'confirmPassword', message: 'The passwords do not match' });
    if (errors.length) return html(reply, renderPage(<ChangePasswordPage config={config} csrfToken={request.csrfToken} user={auth.user} use={await passwordUse(auth.user)} errors={errors} />), 400);
    await store.transaction(async (tx) => {
      await tx.users.setPasswordHash(auth.user.id, await hashPassword(password), now());
      await audit(app, request, { event: 'password.changed', subjectUserId: auth.user.id }, tx);
    });
    return reply.redirect('/settings?password=1', 303);
  });
}

function RemoveMethodPage(m: { config: Config; csrfToken: string; user: User; authenticator: Authenticator; removeWarning?: string; isLast: boolean; error?: string }) {
  return (
    <Layout title={`Remove ${m.authenticator.name}`} rpName={m.config.rpName} csrfToken={m.csrfToken} signedIn={{ displayName: m.user.display_name }}>
      <h1>Remove {m.authenticator.name}</h1>
      <ErrorSummary fields={m.error ? [{ field: 'confirm', message: m.error }] : []} />
      {m.isLast ? (
        <p>This is your only way to sign in, so it cannot be removed. Add a passkey or another method first.</p>
      ) : (
        <form method="post" action={`/settings/authenticators/${m.authenticator.id}/remove`}>
          <CsrfField token={m.csrfToken} />
          <p>You will no longer be able to sign in with it.{m.removeWarning ? ` ${m.removeWarning}` : ''}</p>
          <ConfirmCheckbox label={`I want to remove ${m.authenticator.name}`} error={m.error} />
          <div class="actions">
            <button type="submit" class="warning">
              Remove
            </button>
            <a href="/settings">Cancel</a>
          </div>
        </form>
      )}
    </Layout>
  );
}

type PasswordUse = Pick<PasswordStanding, 'signsInAlone' | 'withApp'>;

function ChangePasswordPage(m: { config: Config; csrfToken: string; user: User; use: PasswordUse; errors: FieldError[] }) {
  const error = (f: string) => m.errors.find((e) => e.field === f);
  const use = m.use.signsInAlone
    ? m.use.withApp
      ? 'You use your password to sign in on its own, and with a code from your authenticator app.'
      : 'You use your password to sign in on its own.'
    : 'You use your password with a code from your authenticator app.';
  return (
    <Layout title="Change your password" rpName={m.config.rpName} csrfToken={m.csrfToken} signedIn={{ displayName: m.user.display_name }}>
      <h1>Change your password</h1>
      <ErrorSummary fields={m.errors} />
      <p>{use} It must be at least 8 characters and not a common password.</p>
      <form method="post" action="/settings/password" novalidate>
        <CsrfField token={m.csrfToken} />
        <div class={`field${error('password') ? ' field-error' : ''}`}>
          <label for="password">New password</label>
          <input type="password" id="password" name="password" autoComplete="new-password" maxLength={256} />
        </div>
        <div class={`field${error('confirmPassword') ? ' field-error' : ''}`}>
          <label for="confirmPassword">Confirm new password</label>
          <input type="password" id="confirmPassword" name="confirmPassword" autoComplete="new-password" maxLength={256} />
        </div>
        <button type="submit">Change password</button>
      </form>
    </Layout>
  );
}
