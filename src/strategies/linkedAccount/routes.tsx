/**
 * Sign in with a linked work account (issue 4): /signin/linked/<id> sends the
 * browser to the organisation's OpenID Connect provider; its callback signs in
 * the profile the upstream account is linked to, at the assurance level
 * configured for that provider.
 *
 * A signed-in person who confirms it is them with their linked account comes
 * back here too (purpose `reauth`): the reauth flow finishes that.
 *
 * Linking itself belongs to the flow that asks for it (self-service): it calls
 * `app.latchkey.linkedAccounts.start(id, { purpose: 'link', bindingHash, linkFlowId, returnTo })`;
 * the callback keeps the checked upstream account (LinkedAccounts.recordLink) and
 * sends the browser back to `returnTo` with a token, whose page takes the account
 * (takeLink) and checks its own flow. Nothing here knows that flow.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { rateLimited } from '../../plugins/rateLimited.js';
import { audit } from '../../audit.js';
import { appError } from '../../errors.js';
import { safeNext } from '../../flows/signin/routes.js';
import { finishLinkedAccountReauth } from '../../flows/reauth/routes.js';
import { startSession } from '../../plugins/sessions.js';
import { afterNonPasskeySignIn } from '../../flows/passkeyUpgrade/afterNonPasskeySignIn.js';
import { LinkedAccountError, type UpstreamLogin } from './linkedAccounts.js';

const ProviderParams = Type.Object({ provider: Type.String({ pattern: '^[a-z0-9-]{1,32}$' }) });
const StartQuery = Type.Object({ next: Type.Optional(Type.String({ maxLength: 512 })) });
// The provider adds what it likes (iss, session_state …); openid-client reads the parameters that matter.
const CallbackQuery = Type.Object({
  state: Type.Optional(Type.String({ maxLength: 512 })),
  code: Type.Optional(Type.String({ maxLength: 4096 })),
  error: Type.Optional(Type.String({ maxLength: 256 })),
});

export async function linkedAccountRoutes(app: FastifyInstance) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const { config, store, now, linkedAccounts: linked } = app.latchkey;

  r.get(
    '/signin/linked/:provider',
    { schema: { params: ProviderParams, querystring: StartQuery }, ...rateLimited(app) },
    async (request, reply) => {
      const returnTo = safeNext(request.query.next);
      if (request.auth) return reply.redirect(returnTo ?? '/settings', 303);
      const url = await linked.start(request.params.provider, { purpose: 'signin', bindingHash: request.bindingHash, returnTo });
      return reply.redirect(url, 303);
    },
  );

  r.get(
    '/signin/linked/:provider/callback',
    { schema: { params: ProviderParams, querystring: CallbackQuery }, ...rateLimited(app) },
    async (request, reply) => {
      const providerId = request.params.provider;
      const provider = linked.provider(providerId);
      if (!provider) throw appError('not_found');
      const failure = (code: string, reason: string, subjectUserId: string | null = null, authenticatorId: string | null = null) => {
        app.latchkey.metrics.ceremonyFailed('signin', 'linked_account', code);
        return audit(app, request, {
          event: 'signin.failed',
          outcome: 'failure',
          subjectUserId,
          actorUserId: null,
          authenticatorId,
          detail: { method: 'linked-account', provider: providerId, code, reason },
        });
      };

      let result: UpstreamLogin;
      try {
        result = await linked.finish(providerId, new URL(request.url, config.origin), request.bindingHash);
      } catch (err) {
        if (err instanceof LinkedAccountError) {
          if (err.status >= 500) request.log.warn({ err: err.cause, provider: providerId }, 'upstream provider unavailable');
          await failure(err.code, err.reason);
        }
        throw err;
      }

      if (result.purpose === 'reauth') return finishLinkedAccountReauth(app, request, reply, result, await linked.findLinked(store, result.issuer, result.subject));

      if (result.purpose === 'link') {
        const { linkFlowId, returnTo } = result;
        if (!linkFlowId || !returnTo) throw appError('not_found');
        const token = await linked.recordLink({ ...result, linkFlowId }, request.bindingHash);
        return reply.redirect(`${returnTo}?link=${token}`, 303);
      }

      const found = await linked.findLinked(store, result.issuer, result.subject);
      if (!found) {
        await failure('linked_account_unknown', 'not_linked');
        throw appError(
          'linked_account_unknown',
          `This ${provider.name} account is not linked to a profile here. Sign in another way, then link it, or ask your registration authority.`,
        );
      }
      const { user, authenticator } = found;
      if (user.status === 'suspended') {
        await failure('account_disabled', 'suspended', user.id, authenticator.id);
        throw appError('account_disabled');
      }
      await store.transaction(async (tx) => {
        await startSession(app, request, reply, user, tx, authenticator.id, app.latchkey.kinds.signInAal(authenticator, user));
        if (user.failed_signins > 0) await tx.users.resetFailedSignins(user.id);
        // A linked account has no signature counter: 0 → 0 only records the time.
        await tx.authenticators.recordUse(authenticator.id, { counter: 0, backedUp: false, backupEligible: false, at: now() });
        await audit(
          app,
          request,
          { event: 'signin', subjectUserId: user.id, actorUserId: user.id, authenticatorId: authenticator.id, detail: { method: 'linked-account', provider: providerId } },
          tx,
        );
      });
      app.latchkey.metrics.ceremony('signin', 'linked_account', 'success');
      return reply.redirect((await afterNonPasskeySignIn(app, user, app.latchkey.kinds.signInAal(authenticator, user), result.returnTo)) ?? result.returnTo ?? '/settings', 303);
    },
  );
}
