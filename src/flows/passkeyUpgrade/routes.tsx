/**
 * Passkey upgrade (issue 14): after a sign-in with anything but a passkey, someone without one is sent to "Set up a
 * passkey" (afterNonPasskeySignIn.ts decides). There the browser's password manager may save a passkey without a
 * dialog (WebAuthn L3 conditional create, `mediation: "conditional"`); where it can't, the page offers the usual
 * ceremony and "Not now", which returns to where the person was going at once and is remembered for
 * LATCHKEY_PASSKEY_PROMPT_DAYS.
 *
 * The person signed in moments ago, so no further check is asked: the sign-in must be within
 * LATCHKEY_REAUTH_MINUTES, as adding a passkey in settings needs.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { RegistrationResponseJSON } from '@simplewebauthn/server';
import { audit } from '../../audit.js';
import { appError, mapUniqueViolation } from '../../errors.js';
import { hasFreshCheck, requireAuth } from '../../plugins/sessions.js';
import { PlacementSchema, RegistrationResponseSchema } from '../../webauthn/schemas.js';
import { originDetail } from '../../webauthn/allowedOrigins.js';
import { renderPage } from '../../views/render.js';
import { html } from '../../http/replies.js';
import { describeDuration } from '../../views/describeDuration.js';
import { sendOnward } from '../../views/continuePage.js';
import { NoScriptForm } from '../../views/noScript.js';
import { sendAuthenticatorAddedNotice } from '../../mail/sendAuthenticatorAddedNotice.js';
import { Csrf } from '../../http/schemas.js';
import { defineFlow } from '../flowMachine.js';
import { safeNext } from '../signin/routes.js';
import { isPasskeyOffered, PASSKEY_UPGRADE_PATH } from './afterNonPasskeySignIn.js';
import { PasskeyUpgradePage } from './views.js';

export const PASSKEY_UPGRADE_FLOW = 'passkey-upgrade';
/** The ceremony of "Set up a passkey": where the person goes afterwards (checked by safeNext when it was started). */
const upgradeCeremony = defineFlow({ type: PASSKEY_UPGRADE_FLOW, data: Type.Object({ next: Type.String({ maxLength: 512 }) }) });

const Next = Type.Optional(Type.String({ maxLength: 512 }));
const PageQuery = Type.Object({ next: Next, nojs: Type.Optional(Type.String({ maxLength: 4 })) });
const OptionsBody = Type.Object({
  /** Options for a conditional create (the password manager may save the passkey without a dialog). */
  conditional: Type.Optional(Type.Boolean()),
  placement: Type.Optional(PlacementSchema),
  next: Next,
});
const VerifyBody = Type.Object({ response: RegistrationResponseSchema, placement: Type.Optional(Type.String({ maxLength: 32 })), next: Next });
const SkipBody = Type.Object({ ...Csrf, next: Next });

export async function passkeyUpgradeRoutes(app: FastifyInstance) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const { config, store, webauthn, now, mailer } = app.latchkey;

  /** The signed-in person, when the sign-in is recent and strong enough to add a passkey without another check (hasFreshCheck). */
  async function recentSignIn(request: FastifyRequest) {
    const auth = requireAuth(request);
    if (!(await hasFreshCheck(app, request))) {
      throw appError(
        'reauth_required',
        `To set up a passkey here you must have signed in within ${describeDuration(config.reauthSeconds)}, with your strongest way in. Go to your Login and security settings to set one up.`,
      );
    }
    return auth;
  }

  r.get(PASSKEY_UPGRADE_PATH, { schema: { querystring: PageQuery } }, async (request, reply) => {
    if (!request.auth) return reply.redirect('/signin');
    const next = safeNext(request.query.next) ?? '/settings';
    const { user, session } = request.auth;
    // Nothing to offer (a passkey since, "Not now", or the page opened again later): straight on, to a waiting service
    // through the continue page, since this answer may still be the sign-in form's navigation (CSP form-action).
    if (!(await hasFreshCheck(app, request)) || !(await isPasskeyOffered(app, user, session.aal))) return sendOnward(reply, config, request.csrfToken, next);
    return html(reply, renderPage(<PasskeyUpgradePage config={config} csrfToken={request.csrfToken} user={user} next={next} noScript={request.query.nojs === '1'} />));
  });

  // "Set up a passkey" posts here only when the page's script did not run.
  r.post(PASSKEY_UPGRADE_PATH, { schema: { querystring: PageQuery, body: NoScriptForm } }, async (request, reply) => {
    requireAuth(request);
    const next = safeNext(request.query.next) ?? '/settings';
    return reply.redirect(`${PASSKEY_UPGRADE_PATH}?next=${encodeURIComponent(next)}&nojs=1`, 303);
  });

  r.post(`${PASSKEY_UPGRADE_PATH}/options`, { schema: { body: OptionsBody } }, async (request) => {
    const { user, session } = await recentSignIn(request);
    // The upgrade is for those it is offered to, who have no passkey; more are added in settings, where UP is always required.
    if (!(await isPasskeyOffered(app, user, session.aal))) throw appError('forbidden', 'You can set up a passkey in your Login and security settings.');
    const conditional = request.body.conditional === true;
    const options = await webauthn.startRegistrationFor(user, {
      flowType: PASSKEY_UPGRADE_FLOW,
      bindingHash: request.bindingHash,
      placement: conditional ? 'any' : (request.body.placement ?? 'any'),
      conditional,
      data: { next: safeNext(request.body.next) ?? '/settings' },
    });
    return { options };
  });

  r.post(`${PASSKEY_UPGRADE_PATH}/verify`, { schema: { body: VerifyBody } }, async (request) => {
    const { user } = await recentSignIn(request);
    const flow = await webauthn.peekFlow(PASSKEY_UPGRADE_FLOW, request.body.response.response.clientDataJSON, request.bindingHash);
    if (flow.user_id !== user.id) throw appError('challenge_invalid');
    const { next } = upgradeCeremony.parse(flow);
    const { authenticator, origin, conditional } = await webauthn.finishRegistration({
      flowType: PASSKEY_UPGRADE_FLOW,
      bindingHash: request.bindingHash,
      response: request.body.response as RegistrationResponseJSON,
      userId: user.id,
      // The one flow whose conditional-create ceremonies may come back without UP (WebAuthn L3 §7.1 step 15).
      acceptConditional: true,
    });
    await store
      .transaction(async (tx) => {
        await tx.authenticators.insert(authenticator);
        if (user.status === 'pending') await tx.users.setStatus(user.id, 'enrolled', now());
        const detail = { name: authenticator.name, how: 'upgrade', ...(conditional ? { conditional: true } : {}), ...originDetail(config, origin) };
        await audit(app, request, { event: 'passkey.added', subjectUserId: user.id, actorUserId: user.id, authenticatorId: authenticator.id, detail }, tx);
      })
      .catch(mapUniqueViolation('credential_exists'));
    const how = conditional ? 'Your browser or password manager saved it for you when you signed in.' : 'It was set up when you signed in.';
    await sendAuthenticatorAddedNotice({ mailer, config, log: request.log }, user, { what: 'passkey', name: authenticator.name, how }, now());
    return { status: 'ok', redirect: next === '/settings' ? '/settings?added=1' : next, passkey: { id: authenticator.id, name: authenticator.name } };
  });

  r.post(`${PASSKEY_UPGRADE_PATH}/skip`, { schema: { body: SkipBody } }, async (request, reply) => {
    const { user } = requireAuth(request);
    await store.users.setPasskeyPromptSkippedAt(user.id, now());
    return sendOnward(reply, config, request.csrfToken, safeNext(request.body.next) ?? '/settings');
  });
}
