/**
 * Self-service "Add an authenticator to your profile" (seed 001; issue 4).
 *
 * One flow record per attempt, bound to the browser: details (email, national
 * identifier, CAPTCHA) → a 6-digit code by email (10 minutes, single use, 5
 * wrong tries burn it; a new code does not reset the count) → a choice of
 * passkey, authenticator app (password + TOTP) or linked work account, whose
 * pages each kind serves from its own folder (kind.routes) → a confirmation
 * page and an email to the person.
 *
 * Every reason the details don't lead to a code — unknown email, no or another
 * identifier, a suspended profile — ends on the same "Problem adding
 * authenticator" page after the same work (one lookup, one HMAC), so the page
 * tells nobody whether an account exists.
 */
import { randomInt } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { audit } from '../../audit.js';
import { requestContext } from '../../plugins/sessions.js';
import { hmac, randomToken, safeEqual } from '../../crypto.js';
import type { Flow, User } from '../../db/schema.js';
import type { Store } from '../../db/store.js';
import { appError, type FieldError } from '../../errors.js';
import { renderPage } from '../../views/render.js';
import { html } from '../../http/replies.js';
import { CsrfBody, Csrf, Id } from '../../http/schemas.js';
import { hashNationalId, nationalIdFormat } from '../../users/nationalId.js';
import { checkEmailAddress } from '../../users/emailAddress.js';
import { describeDuration } from '../../views/describeDuration.js';
import { EMAIL_CODE_MAX_ATTEMPTS, EMAIL_CODE_MAX_RESENDS, EMAIL_CODE_SECONDS, SELF_SERVICE_FLOW_SECONDS, SELF_SERVICE_WINDOW_SECONDS } from './limits.js';
import { selfServiceFlow, type SelfServiceDataSchema } from './selfServiceFlow.js';
import { ChoosePage, CodePage, DetailsPage, DonePage, ProblemPage, StartPage } from './views.js';

const FLOW_SECONDS = SELF_SERVICE_FLOW_SECONDS;
const CODE_SECONDS = EMAIL_CODE_SECONDS;
const MAX_RESENDS = EMAIL_CODE_MAX_RESENDS;
const HOUR = SELF_SERVICE_WINDOW_SECONDS * 1000;

type SelfServiceData = Static<typeof SelfServiceDataSchema>;

/** The only returns a flow keeps: an interaction's local path (never an open redirect). */
const RETURN_TO = /^\/interaction\/[A-Za-z0-9_-]{1,64}$/;

const FlowParams = Type.Object({ flowId: Id });
const DetailsBody = Type.Object({
  ...Csrf,
  email: Type.Optional(Type.String({ maxLength: 2000 })),
  nationalId: Type.Optional(Type.String({ maxLength: 200 })),
  captcha: Type.Optional(Type.String({ maxLength: 4000 })),
});
const CodeBody = Type.Object({ ...Csrf, code: Type.Optional(Type.String({ maxLength: 100 })) });
const ChooseBody = Type.Object({ ...Csrf, type: Type.Optional(Type.String({ maxLength: 80 })) });



/**
 * A flow that starts at the choice of authenticator, for someone signed in who
 * just confirmed it is them (settings): the identity check is already done.
 */
export async function startVerifiedFlow(store: Store, bindingHash: string, user: User, now: number, back?: { path: string; service: string }): Promise<string> {
  const returnTo = back && RETURN_TO.test(back.path) ? { returnTo: back.path, returnService: back.service } : {};
  const flowId = randomToken(16);
  await selfServiceFlow.insert(store, {
    id: flowId,
    binding_hash: bindingHash,
    user_id: user.id,
    lookup: `self-service:${flowId}`,
    data: { step: 'verified', email: user.email, origin: 'settings', ...returnTo },
    created_at: now,
    expires_at: now + FLOW_SECONDS * 1000,
  });
  return flowId;
}

export async function selfServiceRoutes(app: FastifyInstance) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const { config, store, now, secret, mailer, captcha, kinds } = app.latchkey;
  const nationalId = nationalIdFormat(config);
  // The step indicator and Back links depend on where the flow started (the identity check, or settings).
  const base = (request: FastifyRequest, data?: SelfServiceData) => ({ config, csrfToken: request.csrfToken, fromSettings: data?.origin === 'settings' });

  type Loaded = { flow: Flow; data: SelfServiceData };
  type Page = Parameters<typeof selfServiceFlow.load>[2];

  /** This browser's flow, active, at a step `page` accepts; otherwise the page that says to start again. */
  const loadFlow = (request: FastifyRequest & { params: { flowId: string } }, page: Page): Promise<Loaded> =>
    selfServiceFlow.load(store, { id: request.params.flowId, bindingHash: request.bindingHash, now: now() }, page);

  const advance = (current: Loaded, next: SelfServiceData, userId?: string) => selfServiceFlow.advance(store, current, next, now(), userId);

  const codeHash = (flowId: string, code: string) => hmac(secret, `self-service-code:${flowId}:${code}`);

  async function sendCode(current: Loaded, resends: number, user: User): Promise<SelfServiceData> {
    const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
    const { flow, data } = current;
    const next: SelfServiceData = { ...data, resends, step: 'code', email: user.email, codeHash: codeHash(flow.id, code), codeExpiresAt: now() + CODE_SECONDS * 1000 };
    await advance(current, next, user.id);
    await mailer.send({
      to: user.email,
      subject: `Your code to add an authenticator: ${code}`,
      text: `Hello ${user.display_name},

Your code to add an authenticator to your ${config.organisation} profile is:

${code}

It works for ${describeDuration(CODE_SECONDS)}. If you did not ask for it, you can ignore this email: nothing changes without the code.
`,
    });
    return next;
  }


  // ------------------------------------------------------------ start, details, problem

  r.get('/add-authenticator', async (request, reply) => html(reply, renderPage(<StartPage {...base(request)} nationalId={nationalId} />)));

  r.post('/add-authenticator', { schema: { body: CsrfBody } }, async (request, reply) => {
    const flowId = randomToken(16);
    const t = now();
    await selfServiceFlow.insert(store, {
      id: flowId,
      binding_hash: request.bindingHash,
      user_id: null,
      lookup: `self-service:${flowId}`,
      data: { step: 'details' },
      created_at: t,
      expires_at: t + FLOW_SECONDS * 1000,
    });
    return reply.redirect(`/add-authenticator/${flowId}/details`, 303);
  });

  r.get('/add-authenticator/captcha', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    return captcha.challenge(now());
  });

  // Also from the code page's Back link: the details can be corrected, and sending them again sends a new code.
  r.get('/add-authenticator/:flowId/details', { schema: { params: FlowParams } }, async (request, reply) => {
    const { data } = await loadFlow(request, 'details');
    return html(reply, renderPage(<DetailsPage {...base(request)} flowId={request.params.flowId} nationalId={nationalId} values={{ email: data.email ?? '', nationalId: '' }} errors={[]} />));
  });

  r.post(
    '/add-authenticator/:flowId/details',
    { schema: { params: FlowParams, body: DetailsBody } },
    async (request, reply) => {
      const loaded = await loadFlow(request, 'details');
      const { flow, data } = loaded;
      const values = { email: (request.body.email ?? '').trim(), nationalId: request.body.nationalId ?? '' };
      const errors: FieldError[] = [];
      const emailProblem = checkEmailAddress(values.email, 'Enter your email address');
      if (emailProblem) errors.push({ field: 'email', message: emailProblem });
      const normalisedId = nationalId.normalise(values.nationalId);
      if (!normalisedId) errors.push({ field: 'nationalId', message: `Enter your ${nationalId.label}` });
      else {
        const problem = nationalId.check(normalisedId);
        if (problem) errors.push({ field: 'nationalId', message: problem });
      }
      const page = (status: number, message?: string, fieldErrors = errors) =>
        html(reply, renderPage(<DetailsPage {...base(request)} flowId={flow.id} nationalId={nationalId} values={values} errors={fieldErrors} message={message} />), status);
      if (errors.length) return page(400);
      if (!(await captcha.verify(request.body.captcha ?? '', now()))) {
        return page(400, undefined, [{ field: 'captcha', message: 'The check that you are a person did not finish. Wait for it, then select Continue again' }]);
      }
      // Limits per IP and per email address (whether or not it has an account), shared by every instance.
      const t = now();
      const perIp = await store.rateCounters.hit(`self-service-ip:${requestContext(request).ip}`, HOUR, t);
      const perAccount = await store.rateCounters.hit(`self-service-email:${hmac(secret, values.email.toLowerCase())}`, HOUR, t);
      if (perIp > config.selfServicePerIpPerHour || perAccount > config.selfServicePerAccountPerHour) {
        app.latchkey.metrics.ceremony('self_service', 'identity_check', 'throttled');
        await audit(app, request, { event: 'self_service.limited', outcome: 'failure', actorUserId: null });
        return page(429, appError('self_service_limited').message, []);
      }
      const user = await store.users.findByEmail(values.email);
      const expected = user?.national_id_hash ?? '';
      const given = hashNationalId(secret, normalisedId);
      // Compare even when there is nothing to compare with: the same work for every cause.
      const matches = safeEqual(expected || given.replace(/./g, '#'), given) && !!user && user.status !== 'suspended';
      if (!matches) {
        app.latchkey.metrics.ceremony('self_service', 'identity_check', 'wrong_secret');
        await audit(app, request, { event: 'self_service.check_failed', outcome: 'failure', actorUserId: null, subjectUserId: null });
        return reply.redirect(`/add-authenticator/${flow.id}/problem`, 303);
      }
      // Details sent again after a code (Back from the code page) count as asking for a new code.
      const resends = data.step === 'code' ? (data.resends ?? 0) + 1 : 0;
      if (resends > MAX_RESENDS) return page(429, `We have already sent ${MAX_RESENDS} new codes. Start again later, or contact your registration authority.`, []);
      await sendCode(loaded, resends, user);
      await audit(app, request, { event: 'self_service.code_sent', subjectUserId: user.id, actorUserId: null });
      return reply.redirect(`/add-authenticator/${flow.id}/code`, 303);
    },
  );

  r.get('/add-authenticator/:flowId/problem', { schema: { params: FlowParams } }, async (request, reply) => {
    await loadFlow(request, 'details');
    return html(reply, renderPage(<ProblemPage {...base(request)} flowId={request.params.flowId} nationalId={nationalId} />));
  });

  // ------------------------------------------------------------ the emailed code

  r.get(
    '/add-authenticator/:flowId/code',
    { schema: { params: FlowParams, querystring: Type.Object({ resent: Type.Optional(Type.String({ maxLength: 4 })) }) } },
    async (request, reply) => {
      const { flow, data } = await loadFlow(request, 'code');
      const page = <CodePage {...base(request)} flowId={flow.id} email={data.email ?? ''} errors={[]} resent={request.query.resent === '1'} canResend={(data.resends ?? 0) < MAX_RESENDS} />;
      return html(reply, renderPage(page));
    },
  );

  r.post(
    '/add-authenticator/:flowId/code',
    { schema: { params: FlowParams, body: CodeBody } },
    async (request, reply) => {
      const loaded = await loadFlow(request, 'code');
      const { flow, data } = loaded;
      const code = (request.body.code ?? '').replace(/[\s-]+/g, '');
      const page = (status: number, message: string | null, errors: FieldError[]) =>
        html(reply, renderPage(<CodePage {...base(request)} flowId={flow.id} email={data.email ?? ''} errors={errors} message={message} canResend={(data.resends ?? 0) < MAX_RESENDS} />), status);
      if (!/^\d{6}$/.test(code)) return page(400, null, [{ field: 'code', message: 'Enter the 6-digit code from the email' }]);
      if ((data.codeExpiresAt ?? 0) <= now()) return page(410, appError('email_code_expired').message, []);
      if (!safeEqual(codeHash(flow.id, code), data.codeHash ?? '')) {
        const failures = await store.flows.recordFailedAttempt(flow.id, EMAIL_CODE_MAX_ATTEMPTS, now());
        app.latchkey.metrics.ceremony('self_service', 'email_code', 'wrong_secret');
        await audit(app, request, { event: 'self_service.code_failed', outcome: 'failure', subjectUserId: flow.user_id, actorUserId: null });
        if (failures >= EMAIL_CODE_MAX_ATTEMPTS) throw appError('email_code_burned');
        return page(400, null, [{ field: 'code', message: `The code is not right. Check the email and try again (${EMAIL_CODE_MAX_ATTEMPTS - failures} ${EMAIL_CODE_MAX_ATTEMPTS - failures === 1 ? 'try' : 'tries'} left)` }]);
      }
      // Single use: the code is gone once it has worked.
      await advance(loaded, { ...data, step: 'verified', codeHash: undefined, codeExpiresAt: undefined });
      return reply.redirect(`/add-authenticator/${flow.id}/choose`, 303);
    },
  );

  r.post(
    '/add-authenticator/:flowId/code/resend',
    { schema: { params: FlowParams, body: CsrfBody } },
    async (request, reply) => {
      const loaded = await loadFlow(request, 'code');
      const { flow, data } = loaded;
      if ((data.resends ?? 0) >= MAX_RESENDS) throw appError('too_many_requests', `We have already sent ${MAX_RESENDS} new codes. Start again later, or contact your registration authority.`);
      const user = await store.users.findById(flow.user_id!);
      if (!user) throw appError('flow_expired');
      // A new code, the same count of wrong tries (failed_attempts stays on the flow).
      await sendCode(loaded, (data.resends ?? 0) + 1, user);
      return reply.redirect(`/add-authenticator/${flow.id}/code?resent=1`, 303);
    },
  );

  // ------------------------------------------------------------ choose

  r.get('/add-authenticator/:flowId/choose', { schema: { params: FlowParams } }, async (request, reply) => {
    const { flow, data } = await loadFlow(request, 'choose');
    return html(reply, renderPage(<ChoosePage {...base(request, data)} flowId={flow.id} choices={kinds.selfServiceChoices()} errors={[]} />));
  });

  r.post(
    '/add-authenticator/:flowId/choose',
    { schema: { params: FlowParams, body: ChooseBody } },
    async (request, reply) => {
      const { flow, data } = await loadFlow(request, 'choose');
      const choices = kinds.selfServiceChoices();
      const chosen = choices.find((c) => c.value === request.body.type);
      if (chosen) return reply.redirect(chosen.path(flow.id), 303);
      return html(reply, renderPage(<ChoosePage {...base(request, data)} flowId={flow.id} choices={choices} errors={[{ field: 'type', message: 'Select an authenticator type' }]} />), 400);
    },
  );

  // ------------------------------------------------------------ done

  r.get(
    '/add-authenticator/:flowId/done',
    { schema: { params: FlowParams, querystring: Type.Object({ added: Type.Optional(Type.String({ maxLength: 64 })) }) } },
    async (request, reply) => {
      const found = await selfServiceFlow.find(store, { id: request.params.flowId, bindingHash: request.bindingHash, now: now() });
      if (found?.flow.state !== 'consumed') throw appError('not_found');
      const { data } = found;
      const added = request.query.added ?? '';
      const what = kinds.selfServiceChoices().find((c) => c.value === added)?.what ?? 'authenticator';
      // Where to next: back to the service whose step-up sent them (it asks them to confirm it is them with what they
      // just added), their settings when signed in, sign-in otherwise.
      const next =
        data.returnTo && RETURN_TO.test(data.returnTo)
          ? { href: data.returnTo, label: `Continue to ${data.returnService ?? 'the service'}`, service: data.returnService ?? 'the service' }
          : request.auth
            ? { href: '/settings', label: 'Go to Login and security settings' }
            : { href: '/signin', label: 'Go to sign in' };
      return html(reply, renderPage(<DonePage {...base(request)} what={what} next={next} />));
    },
  );
}

