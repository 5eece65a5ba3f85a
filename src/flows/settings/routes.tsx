/**
 * "Login and security settings" (seed 004): list, add, rename and remove
 * passkeys; see and end sessions; recent activity. Adding or removing needs a
 * passkey check within LATCHKEY_REAUTH_MINUTES.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import type { RegistrationResponseJSON } from '@simplewebauthn/server';
import { audit, auditEventLabelsFor } from '../../audit.js';
import { type AppError, appError, mapUniqueViolation } from '../../errors.js';
import { wantsHtml } from '../../plugins/errorHandler.js';
import { endSession, hasFreshCheck, requireAuth } from '../../plugins/sessions.js';
import { PasskeyNameSchema, PlacementSchema, RegistrationResponseSchema } from '../../webauthn/schemas.js';
import { renderPage } from '../../views/render.js';
import { html } from '../../http/replies.js';
import { cleanPasskeyName } from '../../webauthn/passkeyNames.js';
import { passkeyInWords, passkeyStanding } from '../../webauthn/policyInWords.js';
import { RemovePage, RenamePage, SettingsPage } from './views.js';
import { NoScriptForm } from '../../views/noScript.js';
import { sendAuthenticatorAddedNotice } from '../../mail/sendAuthenticatorAddedNotice.js';
import { defineFlow } from '../flowMachine.js';
import { Csrf } from '../../http/schemas.js';
import { originDetail } from '../../webauthn/allowedOrigins.js';
import { PASSKEY_TYPE } from '../../strategies/passkey/kind.js';
import { passwordStanding } from '../../strategies/password/passwordStanding.js';
import type { Authenticator, User } from '../../db/schema.js';

export const ADD_PASSKEY_FLOW = 'add-passkey';
/** Adding a passkey in settings: the name chosen on the form, kept with the ceremony. */
const addPasskeyCeremony = defineFlow({ type: ADD_PASSKEY_FLOW, data: Type.Object({ name: Type.Optional(Type.String()) }) });

const SettingsQuery = Type.Object({
  created: Type.Optional(Type.String({ maxLength: 8 })),
  enrolled: Type.Optional(Type.String({ maxLength: 8 })),
  added: Type.Optional(Type.String({ maxLength: 8 })),
  renamed: Type.Optional(Type.String({ maxLength: 8 })),
  removed: Type.Optional(Type.String({ maxLength: 8 })),
  ended: Type.Optional(Type.String({ maxLength: 8 })),
  password: Type.Optional(Type.String({ maxLength: 8 })),
  passwordset: Type.Optional(Type.String({ maxLength: 8 })),
  unlinked: Type.Optional(Type.String({ maxLength: 8 })),
  signal: Type.Optional(Type.String({ maxLength: 8 })),
  nojs: Type.Optional(Type.String({ maxLength: 4 })),
});
const AddOptionsBody = Type.Object({ name: PasskeyNameSchema, placement: PlacementSchema });
const AddVerifyBody = Type.Object({
  response: RegistrationResponseSchema,
  name: Type.Optional(Type.String({ maxLength: 64 })),
  placement: Type.Optional(Type.String({ maxLength: 32 })),
});
const PasskeyParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });
const SessionParams = Type.Object({ publicId: Type.String({ minLength: 1, maxLength: 64 }) });
const FormBody = Type.Object({
  ...Csrf,
  name: Type.Optional(Type.String({ maxLength: 2000 })),
  confirm: Type.Optional(Type.String({ maxLength: 16 })),
});


export async function settingsRoutes(app: FastifyInstance) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const { config, store, webauthn, now, mailer, kinds } = app.latchkey;

  const reauthRedirect = (reply: FastifyReply, next: string) => reply.redirect(`/settings/reauth?next=${encodeURIComponent(next)}`, 303);

  /**
   * Whether `passkey` is the person's last passkey that signs in (KindRegistry.waysIn): that one stays. A passkey the
   * policy refuses doesn't count, so it never stands in for the one that works.
   */
  const isLastPasskey = (user: User, authenticators: Authenticator[], passkey: Authenticator) =>
    !kinds.waysIn(user, authenticators).some((a) => a.type === PASSKEY_TYPE && a.id !== passkey.id);

  async function loadPasskey(request: FastifyRequest & { params: Static<typeof PasskeyParams> }) {
    const auth = requireAuth(request);
    const passkey = await store.authenticators.findForUser(auth.user.id, request.params.id);
    // Someone else's passkey id is answered exactly like one that does not exist.
    if (!passkey || passkey.type !== 'passkey') throw appError('not_found', 'That passkey was not found. It may already have been removed.');
    return { auth, passkey };
  }

  r.get('/settings', { schema: { querystring: SettingsQuery } }, async (request, reply) => {
    if (!request.auth) return reply.redirect('/signin');
    const { user, session } = request.auth;
    const q = request.query;
    const flash = (['created', 'enrolled', 'added', 'renamed', 'removed', 'ended', 'password', 'passwordset', 'unlinked'] as const).find((k) => q[k]);
    const [passkeys, sessions, activity, roles] = await Promise.all([
      store.authenticators.listForUser(user.id),
      store.sessions.listForUser(user.id, now(), config.sessionIdleSeconds * 1000),
      store.audit.listForSubject(user.id, 20),
      store.roles.listForUser(user.id),
    ]);
    const listed = passkeys.filter((p) => kinds.get(p.type)?.settingsSection === 'passkeys');
    // One passkey and nothing else that signs in: rows that open nothing (a password row under with-app) don't count.
    const waysIn = kinds.waysIn(user, passkeys);
    const onlyPasskey = waysIn.length === 1 && waysIn[0]!.type === PASSKEY_TYPE ? waysIn[0] : undefined;
    const passkeyWords = new Map(listed.map((p) => [p.id, passkeyInWords(passkeyStanding(p, user, kinds, app.latchkey.trust))]));
    return html(
      reply,
      renderPage(
        <SettingsPage
          config={config}
          csrfToken={request.csrfToken}
          user={user}
          passkeys={listed}
          passkeyWords={passkeyWords}
          sessions={sessions}
          currentSessionId={session.public_id}
          activity={activity}
          flash={flash}
          signal={q.signal === '1'}
          noScript={q.nojs === '1'}
          agent={roles.length > 0}
          others={passkeys.filter((p) => kinds.get(p.type)?.settingsSection !== 'passkeys').map((a) => ({ authenticator: a, label: kinds.displayOf(a, user).label }))}
          eventLabels={auditEventLabelsFor(kinds)}
          passwordAlone={config.passwordSignIn === 'alone' ? { offer: passwordStanding(kinds, config, user, passkeys).offer } : undefined}
          onlyPasskey={onlyPasskey}
        />,
      ),
    );
  });

  // The add-passkey form posts here only when the page's script did not run.
  r.post('/settings', { schema: { body: NoScriptForm } }, async (request, reply) => {
    requireAuth(request);
    return reply.redirect('/settings?nojs=1#add-passkey', 303);
  });

  r.post('/settings/passkeys/options', { schema: { body: AddOptionsBody } }, async (request) => {
    const { user } = requireAuth(request);
    if (!(await hasFreshCheck(app, request))) throw appError('reauth_required');
    const options = await webauthn.startRegistrationFor(user, { flowType: ADD_PASSKEY_FLOW, bindingHash: request.bindingHash, placement: request.body.placement, data: { name: request.body.name.trim() } });
    return { options };
  });

  r.post('/settings/passkeys/verify', { schema: { body: AddVerifyBody } }, async (request) => {
    const { user } = requireAuth(request);
    if (!(await hasFreshCheck(app, request))) throw appError('reauth_required');
    const flow = await webauthn.peekFlow(ADD_PASSKEY_FLOW, request.body.response.response.clientDataJSON, request.bindingHash);
    if (flow.user_id !== user.id) throw appError('challenge_invalid');
    const { name } = addPasskeyCeremony.parse(flow);
    const { authenticator, origin } = await webauthn.finishRegistration({
      flowType: ADD_PASSKEY_FLOW,
      bindingHash: request.bindingHash,
      response: request.body.response as RegistrationResponseJSON,
      name: cleanPasskeyName(name),
      userId: user.id,
    });
    await store.transaction(async (tx) => {
      await tx.authenticators.insert(authenticator);
      if (user.status === 'pending') await tx.users.setStatus(user.id, 'enrolled', now());
      await audit(app, request, { event: 'passkey.added', subjectUserId: user.id, authenticatorId: authenticator.id, detail: { name: authenticator.name, ...originDetail(config, origin) } }, tx);
    }).catch(mapUniqueViolation('credential_exists'));
    await sendAuthenticatorAddedNotice({ mailer, config, log: request.log }, user, { what: 'passkey', name: authenticator.name, how: 'It was set up in your Login and security settings.' }, now());
    return { status: 'ok', redirect: '/settings?added=1', passkey: { id: authenticator.id, name: authenticator.name } };
  });

  r.get('/settings/passkeys/:id/rename', { schema: { params: PasskeyParams } }, async (request, reply) => {
    const { auth, passkey } = await loadPasskey(request);
    return html(reply, renderPage(<RenamePage config={config} csrfToken={request.csrfToken} user={auth.user} passkey={passkey} />));
  });

  r.post(
    '/settings/passkeys/:id/rename',
    { schema: { params: PasskeyParams, body: FormBody } },
    async (request, reply) => {
      const { auth, passkey } = await loadPasskey(request);
      const raw = typeof request.body.name === 'string' ? request.body.name : '';
      const name = raw.replace(/\s+/g, ' ').trim();
      const problem = !name ? 'Enter a name for your passkey' : name.length > 64 ? 'Passkey name must be 64 characters or fewer' : undefined;
      if (problem) {
        if (!wantsHtml(request)) throw appError('validation_failed', problem, [{ field: 'name', message: problem }]);
        return html(
          reply,
          renderPage(<RenamePage config={config} csrfToken={request.csrfToken} user={auth.user} passkey={passkey} value={raw.slice(0, 200)} error={{ field: 'name', message: problem }} />),
          400,
        );
      }
      await store.transaction(async (tx) => {
        await tx.authenticators.rename(auth.user.id, passkey.id, name);
        await audit(app, request, { event: 'passkey.renamed', subjectUserId: auth.user.id, authenticatorId: passkey.id, detail: { from: passkey.name, to: name } }, tx);
      });
      return reply.redirect('/settings?renamed=1&signal=1', 303);
    },
  );

  r.get('/settings/passkeys/:id/remove', { schema: { params: PasskeyParams } }, async (request, reply) => {
    const { auth, passkey } = await loadPasskey(request);
    const isLast = isLastPasskey(auth.user, await store.authenticators.listForUser(auth.user.id), passkey);
    if (!isLast && !(await hasFreshCheck(app, request))) return reauthRedirect(reply, `/settings/passkeys/${passkey.id}/remove`);
    return html(reply, renderPage(<RemovePage config={config} csrfToken={request.csrfToken} user={auth.user} passkey={passkey} isLast={isLast} />));
  });

  r.post(
    '/settings/passkeys/:id/remove',
    { schema: { params: PasskeyParams, body: FormBody } },
    async (request, reply) => {
      const { auth, passkey } = await loadPasskey(request);
      // Browsers get the page again with an error summary; API callers get the registry's JSON error.
      const refuse = (error: AppError, isLast: boolean) => {
        if (!wantsHtml(request)) throw error;
        const page = <RemovePage config={config} csrfToken={request.csrfToken} user={auth.user} passkey={passkey} isLast={isLast} error={error.message} />;
        return html(reply, renderPage(page), error.status);
      };
      const unconfirmed = 'Select the box to confirm you want to remove this passkey';
      if (isLastPasskey(auth.user, await store.authenticators.listForUser(auth.user.id), passkey)) return refuse(appError('last_passkey'), true);
      if (!(await hasFreshCheck(app, request))) {
        if (!wantsHtml(request)) throw appError('reauth_required');
        return reauthRedirect(reply, `/settings/passkeys/${passkey.id}/remove`);
      }
      if (request.body.confirm !== 'yes') return refuse(appError('validation_failed', unconfirmed, [{ field: 'confirm', message: unconfirmed }]), false);
      const removed = await store.transaction(async (tx) => {
        // Writing the user row first serialises concurrent removals for one user (a row lock on PostgreSQL,
        // the database lock on SQLite), so two removals can't each see "2 left" and leave none.
        await tx.users.setStatus(auth.user.id, auth.user.status, now());
        if (isLastPasskey(auth.user, await tx.authenticators.listForUser(auth.user.id), passkey)) return false;
        await tx.authenticators.remove(auth.user.id, passkey.id);
        await audit(app, request, { event: 'passkey.removed', subjectUserId: auth.user.id, authenticatorId: passkey.id, detail: { name: passkey.name } }, tx);
        return true;
      });
      if (!removed) return refuse(appError('last_passkey'), true);
      return reply.redirect('/settings?removed=1&signal=1', 303);
    },
  );

  r.post(
    '/settings/sessions/:publicId/end',
    { schema: { params: SessionParams, body: FormBody } },
    async (request, reply) => {
      const auth = requireAuth(request);
      if (request.params.publicId === auth.session.public_id) {
        await endSession(app, request, reply);
        await audit(app, request, { event: 'signout', subjectUserId: auth.user.id, actorUserId: auth.user.id });
        return reply.redirect('/signin', 303);
      }
      if (!(await store.sessions.deleteByPublicId(auth.user.id, request.params.publicId))) throw appError('not_found', 'That session was not found. It may already have ended.');
      await audit(app, request, { event: 'session.ended', subjectUserId: auth.user.id });
      return reply.redirect('/settings?ended=1', 303);
    },
  );

  r.post('/signout', { schema: { body: FormBody } }, async (request, reply) => {
    if (request.auth) {
      await audit(app, request, { event: 'signout', subjectUserId: request.auth.user.id });
      await endSession(app, request, reply);
    }
    return reply.redirect('/signin', 303);
  });
}
