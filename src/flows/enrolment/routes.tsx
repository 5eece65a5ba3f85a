/**
 * The invite link page (seed 000 "Register a passkey", seed 003 "enrolment"):
 * instructions for this device, a phone or tablet via QR code, or a security
 * key; then a passkey ceremony. The account becomes Enrolled.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { RegistrationResponseJSON } from '@simplewebauthn/server';
import { rateLimited } from '../../plugins/rateLimited.js';
import { audit, auditRefusal, auditRefusals } from '../../audit.js';
import { AppError, appError, mapUniqueViolation, validationFailed } from '../../errors.js';
import { wantsHtml } from '../../plugins/errorHandler.js';
import { startSession } from '../../plugins/sessions.js';
import { PasskeyNameSchema, PlacementSchema, RegistrationResponseSchema } from '../../webauthn/schemas.js';
import { renderPage } from '../../views/render.js';
import { html } from '../../http/replies.js';
import { addedBy, sendAuthenticatorAddedNotice } from '../../mail/sendAuthenticatorAddedNotice.js';
import { enrolmentData, ENROLMENT_FLOWS, findInvite, loadUsableInvite, redeemCode } from './invites.js';
import { EnrolCodePage, EnrolledPage, EnrolPage } from './views.js';
import type { FieldError } from '../../errors.js';
import { checkEmailAddress } from '../../users/emailAddress.js';
import { NoScriptForm, NoScriptQuery } from '../../views/noScript.js';
import { defineFlow } from '../flowMachine.js';
import { Csrf } from '../../http/schemas.js';
import { originDetail } from '../../webauthn/allowedOrigins.js';
import { countFailures } from '../../metrics/metrics.js';

export const ENROL_CEREMONY = 'enrol';
/** The passkey ceremony started from an invite: it may finish only that invite. */
const enrolCeremony = defineFlow({ type: ENROL_CEREMONY, data: Type.Object({ inviteId: Type.String() }) });

const Params = Type.Object({ token: Type.String({ maxLength: 100 }) });
const OptionsBody = Type.Object({ name: Type.Optional(Type.Union([PasskeyNameSchema, Type.Literal('')])), placement: PlacementSchema });
const VerifyBody = Type.Object({
  response: RegistrationResponseSchema,
  name: Type.Optional(Type.String({ maxLength: 64 })),
  placement: Type.Optional(Type.String({ maxLength: 32 })),
});

const CodeBody = Type.Object({
  ...Csrf,
  email: Type.Optional(Type.String({ maxLength: 2000 })),
  code: Type.Optional(Type.String({ maxLength: 200 })),
});

export async function enrolmentRoutes(app: FastifyInstance) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const { config, store, webauthn, now, secret, mailer } = app.latchkey;

  // Links and codes come from agents: when one fails (expired, used, a passkey already registered), their audit log says so.
  auditRefusals(app, {
    area: 'enrolment',
    skip: ['enrolment_code_invalid', 'enrolment_code_expired', 'enrolment_code_used', 'enrolment_code_revoked'],
    subjectOf: async (request) => {
      const token = (request.params as { token?: unknown }).token;
      return typeof token === 'string' && token.length <= 100 ? (await findInvite(store, token))?.user_id : null;
    },
  });

  // Seed 003: the person enters the 9-character code an agent gave them, with their email address.
  r.get('/enrol', async (request, reply) => html(reply, renderPage(<EnrolCodePage config={config} csrfToken={request.csrfToken} values={{ email: '', code: '' }} errors={[]} />)));

  r.post('/enrol', { schema: { body: CodeBody }, ...rateLimited(app) }, async (request, reply) => {
    const values = { email: (request.body.email ?? '').trim(), code: (request.body.code ?? '').trim() };
    const errors: FieldError[] = [];
    const emailProblem = checkEmailAddress(values.email, 'Enter your email address');
    if (emailProblem) errors.push({ field: 'email', message: emailProblem });
    if (!values.code) errors.push({ field: 'code', message: 'Enter the 9-character code your agent gave you' });
    if (errors.length) {
      if (!wantsHtml(request)) throw validationFailed(errors);
      return html(reply, renderPage(<EnrolCodePage config={config} csrfToken={request.csrfToken} values={values} errors={errors} />), 400);
    }
    try {
      const invite = await redeemCode(store, config, secret, { email: values.email, code: values.code, bindingHash: request.bindingHash }, now());
      const flow = (await store.flows.findById(invite.flowId))!;
      await audit(app, request, { event: 'enrolment.code_redeemed', subjectUserId: flow.user_id, actorUserId: null, detail: { flowId: enrolmentData(flow).parentId } });
      return reply.redirect(`/enrol/${invite.token}`, 303);
    } catch (err) {
      if (!(err instanceof AppError) || !err.code.startsWith('enrolment_code_')) throw err;
      const subject = async () => (await store.users.findByEmail(values.email))?.id;
      await auditRefusal(app, request, { event: 'enrolment.code_failed', outcome: 'failure', reason: err.code, actorUserId: null, subject });
      const status = err.status;
      if (!wantsHtml(request)) throw err;
      const fields = err.code === 'enrolment_code_invalid' ? [{ field: 'code', message: err.message }] : [];
      const shown = err.code === 'enrolment_code_invalid' ? values : { email: values.email, code: '' };
      return html(reply, renderPage(<EnrolCodePage config={config} csrfToken={request.csrfToken} values={shown} errors={fields} message={fields.length ? null : err.message} code={err.code} />), status);
    }
  });

  // `registered` only picks the wording (a security key is not a passkey on the person's phone); nothing is decided by it.
  r.get('/enrol/done', { schema: { querystring: Type.Object({ registered: Type.Optional(Type.String({ maxLength: 32 })) }) } }, async (request, reply) => {
    if (!request.auth) return reply.redirect('/signin');
    const securityKey = request.query.registered === 'security-key';
    return html(reply, renderPage(<EnrolledPage config={config} csrfToken={request.csrfToken} user={request.auth.user} securityKey={securityKey} />));
  });

  r.get(
    '/enrol/:token',
    { schema: { params: Params, querystring: NoScriptQuery } },
    async (request, reply) => {
      const invite = await loadUsableInvite(store, request.params.token, now(), request.bindingHash);
      const user = (await store.users.findById(invite.user_id!))!;
      const page = <EnrolPage config={config} csrfToken={request.csrfToken} user={user} noScript={request.query.nojs === '1'} securityKey={enrolmentData(invite).requires === 'security-key'} />;
      return html(reply, renderPage(page));
    },
  );
  // The form posts here only when the page's script did not run.
  r.post('/enrol/:token', { schema: { params: Params, body: NoScriptForm } }, async (request, reply) =>
    reply.redirect(`/enrol/${encodeURIComponent(request.params.token)}?nojs=1`, 303),
  );

  r.post(
    '/enrol/:token/options',
    { schema: { params: Params, body: OptionsBody }, ...rateLimited(app) },
    async (request) => {
      const invite = await loadUsableInvite(store, request.params.token, now(), request.bindingHash);
      const user = (await store.users.findById(invite.user_id!))!;
      const securityKey = enrolmentData(invite).requires === 'security-key';
      const options = await webauthn.startRegistrationFor(user, { flowType: ENROL_CEREMONY, bindingHash: request.bindingHash, placement: request.body.placement, data: { inviteId: invite.id }, securityKey });
      return { options };
    },
  );

  r.post(
    '/enrol/:token/verify',
    { schema: { params: Params, body: VerifyBody }, ...rateLimited(app), onError: countFailures(app.latchkey.metrics, 'enrolment', 'passkey') },
    async (request, reply) => {
      const invite = await loadUsableInvite(store, request.params.token, now(), request.bindingHash);
      const ceremony = await webauthn.peekFlow(ENROL_CEREMONY, request.body.response.response.clientDataJSON, request.bindingHash);
      if (enrolCeremony.read(ceremony)?.inviteId !== invite.id) throw appError('challenge_invalid');
      const user = (await store.users.findById(invite.user_id!))!;
      const { authenticator, origin } = await webauthn.finishRegistrationFor(user.id, { flowType: ENROL_CEREMONY, bindingHash: request.bindingHash, response: request.body.response as RegistrationResponseJSON, typedName: request.body.name });
      const issued = enrolmentData(invite);
      await store.transaction(async (tx) => {
        // Consumed here and only here: by the registration that succeeds, atomically with storing its passkey.
        if (!(await tx.flows.consume(invite.id, now()))) throw appError('invite_used');
        // Any other link or code still out for this person stops working now that they are enrolled.
        await tx.flows.revokeActiveForUser(user.id, ENROLMENT_FLOWS, now());
        await tx.authenticators.insert({ ...authenticator, issued_by: issued.issuedBy ?? null });
        // A suspended person stays suspended: the passkey is theirs, signing in waits for an agent.
        if (user.status !== 'suspended') await tx.users.setStatus(user.id, 'enrolled', now());
        await audit(
          app,
          request,
          {
            event: 'enrolment.completed',
            subjectUserId: user.id,
            actorUserId: user.id,
            authenticatorId: authenticator.id,
            // flowId: the enrolment as it was issued (a code's, when a code opened this link), so whoever issued it can match it.
            detail: { flowId: issued.parentId ?? invite.id, method: issued.method ?? 'link', issuedBy: issued.issuedBy, ...(issued.requires ? { requires: issued.requires } : {}) },
          },
          tx,
        );
        await audit(app, request, { event: 'passkey.added', subjectUserId: user.id, actorUserId: user.id, authenticatorId: authenticator.id, detail: { name: authenticator.name, ...originDetail(config, origin) } }, tx);
      }).catch(mapUniqueViolation('credential_exists'));
      app.latchkey.metrics.ceremony('enrolment', 'passkey', 'success');
      app.latchkey.metrics.enrolment('completed', issued.method ?? 'link');
      // As for every authenticator added: the person hears of it by email, whoever issued the link or code.
      await sendAuthenticatorAddedNotice({ mailer, config, log: request.log }, user, { what: 'passkey', name: authenticator.name, how: addedBy(issued.method) }, now());
      if (user.status !== 'suspended') await startSession(app, request, reply, user, undefined, authenticator.id);
      const done = issued.requires === 'security-key' ? '/enrol/done?registered=security-key' : '/enrol/done';
      return { status: 'ok', redirect: user.status === 'suspended' ? '/signin' : done };
    },
  );
}
