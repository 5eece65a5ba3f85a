/**
 * Linking a work account from self-service (each provider's choice): confirm
 * only you have the account, go to the provider, and come back to finish the
 * flow through flows/selfService/kindEnrolment.ts.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { audit } from '../../audit.js';
import { appError } from '../../errors.js';
import { renderPage } from '../../views/render.js';
import { html } from '../../http/replies.js';
import { Csrf, Id } from '../../http/schemas.js';
import { completeSelfServiceEnrolment, loadSelfServiceEnrolment, selfServicePageBase } from '../../flows/selfService/kindEnrolment.js';
import { LinkedConfirmPage } from './selfServiceViews.js';

const ConfirmBody = Type.Object({ ...Csrf, confirm: Type.Optional(Type.String({ maxLength: 16 })) });

export async function linkedAccountSelfServiceRoutes(app: FastifyInstance) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const { config, now, linkedAccounts } = app.latchkey;

  const ProviderParams = Type.Object({ flowId: Id, provider: Type.String({ pattern: '^[a-z0-9-]{1,32}$' }) });
  const LinkedFinishQuery = Type.Object({ link: Type.Optional(Id) });
  const providerById = (id: string) => {
    const provider = config.upstreamProviders.find((p) => p.id === id);
    if (!provider) throw appError('not_found', 'That kind of account cannot be linked here.');
    return provider;
  };
  // This page's form answers with a redirect to the provider, and Chromium applies CSP form-action to every
  // redirect of a form's navigation: with 'self' alone the browser refuses to leave for the provider.
  const allowFormToProvider = async (reply: FastifyReply, providerId: string) => {
    const csp = reply.getHeader('content-security-policy');
    if (typeof csp !== 'string') return;
    const origins = await linkedAccounts.authorizationOrigins(providerId);
    reply.header('content-security-policy', csp.replace(/form-action ([^;]*)/, (_, sources: string) => `form-action ${sources} ${origins.join(' ')}`));
  };

  r.get('/add-authenticator/:flowId/linked/:provider', { schema: { params: ProviderParams } }, async (request, reply) => {
    const { flow, data } = await loadSelfServiceEnrolment(app, request);
    const provider = providerById(request.params.provider);
    await allowFormToProvider(reply, provider.id);
    return html(reply, renderPage(<LinkedConfirmPage {...selfServicePageBase(app, request, data)} flowId={flow.id} providerId={provider.id} providerName={provider.name} errors={[]} />));
  });

  r.post(
    '/add-authenticator/:flowId/linked/:provider',
    { schema: { params: ProviderParams, body: ConfirmBody } },
    async (request, reply) => {
      const { flow, data } = await loadSelfServiceEnrolment(app, request);
      const provider = providerById(request.params.provider);
      if (request.body.confirm !== 'yes') {
        const errors = [{ field: 'confirm', message: `Select the box to confirm only you have access to this ${provider.name} account` }];
        const page = <LinkedConfirmPage {...selfServicePageBase(app, request, data)} flowId={flow.id} providerId={provider.id} providerName={provider.name} errors={errors} />;
        await allowFormToProvider(reply, provider.id);
        return html(reply, renderPage(page), 400);
      }
      const url = await linkedAccounts.start(provider.id, {
        purpose: 'link',
        bindingHash: request.bindingHash,
        linkFlowId: flow.id,
        returnTo: `/add-authenticator/${flow.id}/linked/${provider.id}/finish`,
      });
      return reply.redirect(url, 303);
    },
  );

  // The upstream provider sent the person back (src/strategies/linkedAccount): link what it vouched for to the
  // profile this flow checked.
  r.get(
    '/add-authenticator/:flowId/linked/:provider/finish',
    { schema: { params: ProviderParams, querystring: LinkedFinishQuery } },
    async (request, reply) => {
      const enrolment = await loadSelfServiceEnrolment(app, request);
      const { flow, user } = enrolment;
      const provider = providerById(request.params.provider);
      const done = await completeSelfServiceEnrolment(app, request, enrolment, {
        choice: `linked:${provider.id}`,
        what: `${provider.name} account`,
        add: async (tx) => {
          const vouched = await linkedAccounts.takeLink(tx, request.query.link ?? '', flow.id, provider.id, request.bindingHash);
          if (!vouched) throw appError('flow_expired');
          const { authenticator, created } = await linkedAccounts.linkAccount(tx, user.id, vouched.provider, vouched.issuer, vouched.subject, now());
          // linkAccount leaves the audit to its caller (as passkey.added and totp.added are written on the other branches).
          if (created) {
            const detail = { provider: vouched.provider.id, via: 'self-service' };
            await audit(app, request, { event: 'linked_account.added', subjectUserId: user.id, actorUserId: user.id, authenticatorId: authenticator.id, detail }, tx);
          }
          return authenticator.id;
        },
      });
      return reply.redirect(done, 303);
    },
  );
}
