/**
 * The provider's interaction pages, /interaction/:uid: the only part of the
 * OpenID Connect protocol Latchkey renders itself.
 *
 * - login: with a Latchkey session that satisfies the request, finish at once
 *   (accountId = user id; acr and amr from the session, via assurance.ts).
 *   Without one, sign in at /signin and come back. `prompt=login` or a
 *   `max_age` the session is older than: sign in afresh. `login_hint`
 *   prefills the email.
 * - step-up: a request needing a higher AAL than the session has (the one
 *   rule, requiredAssurance: the service's level, acr_values, an acr in the
 *   claims parameter) sends the person through a fresh check
 *   (/settings/reauth raises the session's AAL); when they have nothing strong
 *   enough, a page says what they need and where to add it.
 * - consent: first-party services are granted what they ask; others get a
 *   page to allow or refuse.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type Provider from 'oidc-provider';
import type { InteractionResults } from 'oidc-provider';
import { Type, type Static } from 'typebox';
import { audit } from '../audit.js';
import { hmac, safeEqual } from '../crypto.js';
import { appError } from '../errors.js';
import { endSession } from '../plugins/sessions.js';
import { sendContinuePage } from '../views/continuePage.js';
import { CsrfField, Layout } from '../views/layout.js';
import { renderPage } from '../views/render.js';
import { html } from '../http/replies.js';
import { CsrfBody } from '../http/schemas.js';
import { SERVICE_AAL, SERVICE_FIRST_PARTY } from './adapter.js';
import { assuranceOutcome, requiredAssurance, toAal } from './assurance.js';
import type { Aal } from '../strategies/authenticatorKind.js';
import { loginOf } from './provider.js';
import { isEmailAddress } from '../users/emailAddress.js';

/** An interaction's uid, as oidc-provider makes them (nanoid); also what a page may carry to come back to one. */
export const InteractionUid = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' });
const UidParams = Type.Object({ uid: InteractionUid });
/** `after`: set when this interaction sent the person to sign in afresh: "<ms>.<HMAC>", so it can't be forged. */
const InteractionQuery = Type.Object({ after: Type.Optional(Type.String({ maxLength: 100 })) });

type Details = Awaited<ReturnType<Provider['interactionDetails']>>;

const AAL_WAYS: Record<Aal, string> = {
  1: 'any way you can sign in',
  2: 'a passkey, or a password with an authenticator app',
  3: 'a passkey on a security key that your organisation has approved',
};

/**
 * A service's sign-in waiting at this interaction, to come back to after adding an authenticator (step-up):
 * its local path, built here from a uid the provider knows, so a return can never lead off-site.
 */
export async function serviceWaitingAt(provider: Provider | undefined, uid: string): Promise<{ path: string; service: string } | undefined> {
  if (!provider || !/^[A-Za-z0-9_-]{1,64}$/.test(uid)) return undefined;
  const interaction = await provider.Interaction.find(uid);
  if (!interaction) return undefined;
  const client = await provider.Client.find(String(interaction.params.client_id));
  if (!client) return undefined;
  return { path: `/interaction/${uid}`, service: client.clientName ?? client.clientId };
}

export async function interactionRoutes(app: FastifyInstance, opts: { provider: () => Provider }) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  // The current provider: it is rebuilt when the signing keys change (routes.ts).
  const oidc = opts.provider;
  const { config, store, now } = app.latchkey;

  async function loadDetails(request: FastifyRequest & { params: Static<typeof UidParams> }, reply: FastifyReply): Promise<Details> {
    let details: Details;
    try {
      details = await oidc().interactionDetails(request.raw, reply.raw);
    } catch (err) {
      // SessionNotFound: no interaction cookie, or the interaction expired or finished.
      if ((err as { name?: string }).name === 'SessionNotFound') throw appError('interaction_expired');
      throw err;
    }
    if (details.uid !== request.params.uid) throw appError('interaction_expired');
    return details;
  }

  async function serviceOf(details: Details) {
    const client = await oidc().Client.find(String(details.params.client_id));
    if (!client) throw appError('interaction_expired');
    return { client, name: client.clientName ?? client.clientId, required: toAal(Number(client[SERVICE_AAL] ?? 1)), firstParty: client[SERVICE_FIRST_PARTY] === true };
  }

  /** Finish the interaction; a form post continues by script (CSP form-action), a navigation by redirect. */
  async function finish(request: FastifyRequest, reply: FastifyReply, result: InteractionResults, fromForm: boolean) {
    let to: string;
    try {
      // Merged: a consent result keeps the login of this request (else prompt=login would ask again, forever).
      to = await oidc().interactionResult(request.raw, reply.raw, result, { mergeWithLastSubmission: !result.login });
    } catch (err) {
      if ((err as { name?: string }).name === 'SessionNotFound') throw appError('interaction_expired');
      throw err;
    }
    return fromForm ? sendContinuePage(reply, config, request.csrfToken, to) : reply.header('cache-control', 'no-store').redirect(to, 303);
  }

  /**
   * Someone else signed in since this browser's provider session was made (the earlier person signed out of
   * Latchkey): empty it of that person — account, sign-in, grants and sids — before finishing, so the new person's
   * sign-in starts it afresh. oidc-provider would otherwise answer with its switch-account logout, a page that posts
   * itself and ends the new person's session too.
   */
  async function forgetProviderSession(details: Details) {
    const opSession = await oidc().Session.findByUid(details.session!.uid);
    if (opSession?.accountId) {
      for (const field of ['accountId', 'acr', 'amr', 'loginTs', 'authorizations']) delete (opSession as unknown as Record<string, unknown>)[field];
      await opSession.persist();
    }
    // The interaction remembers whose session it began in, and oidc-provider refuses to finish it when that changed.
    delete (details.session as { accountId?: string }).accountId;
    await details.save(details.exp - Math.floor(Date.now() / 1000));
  }

  async function grantConsent(details: Details): Promise<string> {
    const accountId = details.session!.accountId;
    const grant = details.grantId
      ? ((await oidc().Grant.find(details.grantId)) ?? new (oidc().Grant)({ accountId, clientId: String(details.params.client_id) }))
      : new (oidc().Grant)({ accountId, clientId: String(details.params.client_id) });
    const missing = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
    return grant.save();
  }


  const freshMark = (uid: string, at: number) => `${at}.${hmac(app.latchkey.secret, `interaction-fresh:${uid}:${at}`)}`;
  /** When this interaction sent the person to sign in afresh, if the mark is ours. */
  const freshSince = (uid: string, mark: string | undefined): number | undefined => {
    const at = Number(mark?.split('.')[0]);
    return mark && Number.isSafeInteger(at) && safeEqual(mark, freshMark(uid, at)) ? at : undefined;
  };

  r.get(
    '/interaction/:uid',
    { schema: { params: UidParams, querystring: InteractionQuery } },
    async (request, reply) => {
    const details = await loadDetails(request, reply);
    const here = `/interaction/${details.uid}`;
    const service = await serviceOf(details);
    const params = details.params as { prompt?: string; max_age?: number | string; login_hint?: string; acr_values?: string; claims?: string };
    // The same rule as the provider's checks (provider.tsx): what the service, acr_values and the claims parameter ask for.
    const required = requiredAssurance(config, service.required, params);
    const signIn = (after?: number) => {
      const hint = typeof params.login_hint === 'string' && isEmailAddress(params.login_hint) ? `&email=${encodeURIComponent(params.login_hint)}` : '';
      const next = after === undefined ? here : `${here}?after=${freshMark(details.uid, after)}`;
      return reply.redirect(`/signin?next=${encodeURIComponent(next)}${hint}`, 303);
    };

    const auth = request.auth;
    if (!auth) return signIn();

    if (details.prompt.name === 'login') {
      const t = now();
      const { session, user } = auth;
      // OpenID Connect Core §3.1.2.1: prompt=login and max_age ask for an authentication during this request.
      // The interaction's iat is in whole seconds: without our own mark, only a sign-in in a later second counts.
      const since = freshSince(details.uid, request.query.after);
      const signedInSince = session.authenticated_at >= (since ?? (details.iat + 1) * 1000);
      const forceLogin = (params.prompt ?? '').split(' ').includes('login') && !signedInSince;
      const maxAge = params.max_age === undefined ? undefined : Number(params.max_age);
      const tooOld = maxAge !== undefined && Number.isFinite(maxAge) && session.authenticated_at < t - maxAge * 1000 && !signedInSince;
      if (forceLogin || tooOld) {
        await endSession(app, request, reply);
        return signIn(t);
      }

      // The person's authenticators are read only when the sign-in falls short.
      const outcome =
        assuranceOutcome(required, session.aal, Infinity) === 'enough' ? 'enough' : assuranceOutcome(required, session.aal, app.latchkey.kinds.reachableAal(user, await store.authenticators.listForUser(user.id)));
      if (outcome !== 'enough') {
        await audit(app, request, {
          event: 'oidc.step_up',
          outcome: outcome === 'step-up' ? 'success' : 'failure',
          subjectUserId: user.id,
          actorUserId: user.id,
          detail: { service: service.client.clientId, required: required.aal ?? 'unknown acr', reached: session.aal },
        });
        if (outcome === 'step-up') return reply.redirect(`/settings/reauth?next=${encodeURIComponent(here)}${required.aal === 3 ? '&need=3' : ''}`, 303);
        return html(reply, renderPage(<StrongerSignInPage rpName={config.rpName} csrfToken={request.csrfToken} service={service.name} required={required.aal} uid={details.uid} />), 403);
      }

      const done = await loginOf(app.latchkey, user, session);
      if (details.session?.accountId && details.session.accountId !== user.id) await forgetProviderSession(details);
      return finish(request, reply, { login: { accountId: user.id, acr: done.acr, amr: done.amr, ts: done.ts, remember: false } }, false);
    }

    if (details.prompt.name === 'consent') {
      if (details.session?.accountId !== auth.user.id) throw appError('interaction_expired');
      if (service.firstParty) return finish(request, reply, { consent: { grantId: await grantConsent(details) } }, false);
      const missing = details.prompt.details as { missingOIDCScope?: string[] };
      return html(reply, renderPage(<ConsentPage rpName={config.rpName} csrfToken={request.csrfToken} service={service.name} scopes={missing.missingOIDCScope ?? []} uid={details.uid} />));
    }
    throw appError('interaction_expired');
    },
  );

  r.post('/interaction/:uid/confirm', { schema: { params: UidParams, body: CsrfBody } }, async (request, reply) => {
    const details = await loadDetails(request, reply);
    if (details.prompt.name !== 'consent' || !request.auth || details.session?.accountId !== request.auth.user.id) throw appError('interaction_expired');
    const service = await serviceOf(details);
    await audit(app, request, { event: 'oidc.consent', subjectUserId: request.auth.user.id, actorUserId: request.auth.user.id, detail: { service: service.client.clientId } });
    return finish(request, reply, { consent: { grantId: await grantConsent(details) } }, true);
  });

  r.post('/interaction/:uid/abort', { schema: { params: UidParams, body: CsrfBody } }, async (request, reply) => {
    await loadDetails(request, reply);
    return finish(request, reply, { error: 'access_denied', error_description: 'End-User aborted interaction' }, true);
  });
}

const SCOPE_TEXT: Record<string, string> = { openid: 'know who you are', email: 'see your email address', profile: 'see your name', offline_access: 'stay signed in when you are not using it' };

function ConsentPage(props: { rpName: string; csrfToken: string; service: string; scopes: string[]; uid: string }) {
  const items = ['openid', ...props.scopes.filter((s) => s !== 'openid')].map((s) => SCOPE_TEXT[s] ?? s);
  return (
    <Layout title={`Sign in to ${props.service}`} rpName={props.rpName} csrfToken={props.csrfToken} page="consent">
      <h1>Sign in to {props.service}?</h1>
      <p>{props.service} will be able to:</p>
      <ul>
        {items.map((i) => (
          <li>{i}</li>
        ))}
      </ul>
      <div class="actions">
        <form method="post" action={`/interaction/${props.uid}/confirm`} class="inline">
          <CsrfField token={props.csrfToken} />
          <button type="submit">Allow</button>
        </form>
        <form method="post" action={`/interaction/${props.uid}/abort`} class="inline">
          <CsrfField token={props.csrfToken} />
          <button type="submit" class="secondary">
            Cancel
          </button>
        </form>
      </div>
    </Layout>
  );
}

/** `required` undefined: the service asked for a kind of sign-in Latchkey does not offer (an unknown essential acr). */
function StrongerSignInPage(props: { rpName: string; csrfToken: string; service: string; required: Aal | undefined; uid: string }) {
  return (
    <Layout title={`${props.service} needs a stronger way to sign in`} rpName={props.rpName} csrfToken={props.csrfToken} page="step-up-needed">
      <h1>{props.service} needs a stronger way to sign in</h1>
      {props.required ? (
        <p data-required-aal={String(props.required)}>
          To use {props.service}, sign in with {AAL_WAYS[props.required]}. The way you signed in today is not enough for it.
        </p>
      ) : (
        <p data-required-aal="unknown">
          {props.service} asked for a way to sign in that {props.rpName} does not offer. Tell the service's support team.
        </p>
      )}
      <h2>What you can do</h2>
      <ul>
        {props.required && props.required <= 2 ? (
          // Signed in already: the settings route, with no identity check again, and back here when it is added.
          <li>
            <form method="post" action="/settings/add-authenticator" class="inline">
              <CsrfField token={props.csrfToken} />
              <input type="hidden" name="interaction" value={props.uid} />
              <button type="submit" class="link-button">
                Add a passkey or an authenticator app
              </button>
            </form>
            , then come back to {props.service}.
          </li>
        ) : null}
        {props.required === 3 ? (
          <li data-contact-ra>
            Contact your registration authority (RA). They can issue you a security key that gives this level and help you register it. Passkeys on phones, computers and
            password managers can’t give it.
          </li>
        ) : null}
        <li>
          If you already have one, <a href="/settings">check your Login and security settings</a>.
        </li>
      </ul>
      <form method="post" action={`/interaction/${props.uid}/abort`}>
        <CsrfField token={props.csrfToken} />
        <button type="submit" class="secondary">
          Go back to {props.service}
        </button>
      </form>
    </Layout>
  );
}
