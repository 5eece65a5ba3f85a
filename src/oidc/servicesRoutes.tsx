/**
 * Services in pages:
 * - `/services`: the services a signed-in person can use, each marked by the
 *   assurance level it needs and whether one of their authenticators reaches it
 *   (and where to add one that does);
 * - `/admin/services`: RA Managers register, list and remove services (the
 *   console's side of `latchkey services add`); a confidential service's secret
 *   is shown once. The console plugin registers these, behind its gate.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { audit } from '../audit.js';
import { appError, type FieldError } from '../errors.js';
import { renderPage } from '../views/render.js';
import { html } from '../http/replies.js';
import { Csrf, CsrfBody, Id } from '../http/schemas.js';
import { CsrfField, ErrorSummary, Field, Layout } from '../views/layout.js';
import type { Config } from '../config/index.js';
import type { Authenticator, Service, User } from '../db/schema.js';
import { toAal } from './assurance.js';
import type { Aal } from '../strategies/authenticatorKind.js';
import { addService, removeService, ServiceInputError } from './services.js';
import { DEFAULT_ID_TOKEN_ALG, isSigningAlg, SIGNING_ALGS, type SigningAlg } from './signingKeys.js';

/** How the services form names each ID-token signing algorithm. */
const ID_TOKEN_ALG_WORDS: Record<SigningAlg, string> = {
  ES256: 'ES256 (recommended: smaller and faster to sign)',
  RS256: 'RS256, for a service whose OpenID Connect library accepts only RS256',
};
import { agentOf } from '../admin/guard.js';

const levelWords: Record<Aal, string> = {
  1: 'AAL1: any way to sign in',
  2: 'AAL2: a passkey, or a password with an authenticator app',
  3: 'AAL3: a hardware security key',
};

const AddBody = Type.Object({
  ...Csrf,
  name: Type.Optional(Type.String({ maxLength: 2000 })),
  redirectUris: Type.Optional(Type.String({ maxLength: 4000 })),
  logoutUris: Type.Optional(Type.String({ maxLength: 4000 })),
  clientType: Type.Optional(Type.String({ maxLength: 20 })),
  aal: Type.Optional(Type.String({ maxLength: 2 })),
  firstParty: Type.Optional(Type.String({ maxLength: 8 })),
  idTokenAlg: Type.Optional(Type.String({ maxLength: 8 })),
});
const ServiceParams = Type.Object({ clientId: Id });
const Done = Type.Object({ done: Type.Optional(Type.String({ maxLength: 16 })) });

/** `/services`, for everyone signed in. */
export async function servicesRoutes(app: FastifyInstance) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const { config, store } = app.latchkey;

  r.get('/services', async (request, reply) => {
    if (!request.auth) return reply.redirect('/signin?next=%2Fservices');
    const { user } = request.auth;
    const [services, authenticators] = await Promise.all([store.services.list(), store.authenticators.listForUser(user.id)]);
    return html(reply, renderPage(<ServicesPage config={config} csrfToken={request.csrfToken} user={user} services={services} best={app.latchkey.kinds.reachableAal(user, authenticators)} />));
  });
}

/**
 * The console's side (RA Managers): registered by the console plugin (src/admin/routes.tsx), so its gate
 * decides access from each route's declared permission like every other console route.
 */
export async function consoleServicesRoutes(app: FastifyInstance) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const { config, store, now, secretBox } = app.latchkey;
  const permission = 'services.manage';

  r.get('/admin/services', { config: { permission }, schema: { querystring: Done } }, async (request, reply) => {
    const agent = agentOf(request);
    const flash = request.query.done === 'removed' ? 'The service has been removed: it can no longer sign people in.' : null;
    return html(reply, renderPage(<AdminServicesPage config={config} csrfToken={request.csrfToken} agent={agent.user} services={await store.services.list()} errors={[]} flash={flash} />));
  });

  r.post('/admin/services', { config: { permission }, schema: { body: AddBody } }, async (request, reply) => {
    const agent = agentOf(request);
    const b = request.body;
    const values = { name: (b.name ?? '').trim(), redirectUris: b.redirectUris ?? '', logoutUris: b.logoutUris ?? '', clientType: b.clientType ?? '', aal: b.aal ?? '', firstParty: b.firstParty === 'yes', idTokenAlg: b.idTokenAlg ?? DEFAULT_ID_TOKEN_ALG };
    const errors: FieldError[] = [];
    if (!values.name) errors.push({ field: 'name', message: 'Enter the service’s name' });
    const lines = (s: string) => s.split(/\s+/).map((l) => l.trim()).filter(Boolean);
    if (!lines(values.redirectUris).length) errors.push({ field: 'redirectUris', message: 'Enter at least one redirect URI' });
    if (values.clientType !== 'public' && values.clientType !== 'confidential') errors.push({ field: 'clientType-confidential', message: 'Choose whether the service keeps a secret' });
    if (!['1', '2', '3'].includes(values.aal)) errors.push({ field: 'aal-2', message: 'Choose the assurance level the service needs' });
    if (!isSigningAlg(values.idTokenAlg)) errors.push({ field: `idTokenAlg-${DEFAULT_ID_TOKEN_ALG}`, message: 'Choose how the service’s ID tokens are signed' });
    const page = async (status: number, extra: FieldError[] = [], created?: { service: Service; clientSecret?: string }) =>
      html(
        reply,
        renderPage(
          <AdminServicesPage config={config} csrfToken={request.csrfToken} agent={agent.user} services={await store.services.list()} errors={[...errors, ...extra]} values={values} created={created} />,
        ),
        status,
      );
    if (errors.length) return page(400);
    let created: { service: Service; clientSecret?: string };
    try {
      created = await addService(
        store,
        secretBox,
        {
          name: values.name,
          redirectUris: lines(values.redirectUris),
          postLogoutRedirectUris: lines(values.logoutUris),
          clientType: values.clientType as 'public' | 'confidential',
          aal: toAal(Number(values.aal)),
          firstParty: values.firstParty,
          idTokenAlg: values.idTokenAlg as SigningAlg,
        },
        now(),
      );
    } catch (err) {
      if (err instanceof ServiceInputError) return page(400, [{ field: 'redirectUris', message: err.message.replace(/^--\S+ /, '') }]);
      throw err;
    }
    await audit(app, request, { event: 'service.added', detail: { clientId: created.service.client_id, name: created.service.name, aal: created.service.aal, idTokenAlg: created.service.id_token_alg } });
    errors.length = 0;
    return page(201, [], created);
  });

  r.post(
    '/admin/services/:clientId/remove',
    { config: { permission }, schema: { params: ServiceParams, body: CsrfBody } },
    async (request, reply) => {
      const service = await removeService(store, request.params.clientId);
      if (!service) throw appError('not_found', 'That service was not found.');
      await audit(app, request, { event: 'service.removed', detail: { clientId: service.client_id, name: service.name } });
      return reply.redirect('/admin/services?done=removed', 303);
    },
  );
}

function ServicesPage(m: { config: Config; csrfToken: string; user: User; services: Service[]; best: Aal | 0 }) {
  return (
    <Layout title="Services you can use" rpName={m.config.rpName} csrfToken={m.csrfToken} signedIn={{ displayName: m.user.display_name }}>
      <h1>Services you can use</h1>
      <p>Each service asks for a level of assurance when you sign in. Your authenticators decide which services you can use.</p>
      {m.services.length ? (
        <table aria-label="Services">
          <thead>
            <tr>
              <th scope="col">Service</th>
              <th scope="col">Needs</th>
              <th scope="col">Can you use it?</th>
            </tr>
          </thead>
          <tbody>
            {m.services.map((s) => {
              const ok = m.best >= s.aal;
              return (
                <tr data-service={s.client_id} data-usable={ok ? 'yes' : 'no'}>
                  <td data-label="Service">{s.name}</td>
                  <td data-label="Needs">{levelWords[toAal(s.aal)]}</td>
                  <td data-label="Can you use it?">
                    {ok ? (
                      'Yes'
                    ) : s.aal >= 3 ? (
                      // A key people add themselves is registered without attestation (unless the policy asks for it), so it
                      // can't give AAL3: only their registration authority can issue one that does (README "Security keys for AAL3").
                      'Not yet: ask your registration authority for a security key'
                    ) : (
                      <>
                        Not yet: <a href="/add-authenticator">add a passkey or an authenticator app</a>
                      </>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      ) : (
        <p>No services use {m.config.rpName} yet.</p>
      )}
      <p>
        <a href="/settings">Back to Login and security settings</a>
      </p>
    </Layout>
  );
}

interface ServiceFormValues {
  name: string;
  redirectUris: string;
  logoutUris: string;
  clientType: string;
  aal: string;
  firstParty: boolean;
  idTokenAlg: string;
}

function AdminServicesPage(m: {
  config: Config;
  csrfToken: string;
  agent: User;
  services: Service[];
  errors: FieldError[];
  values?: ServiceFormValues;
  created?: { service: Service; clientSecret?: string };
  flash?: string | null;
}) {
  const v = m.values && !m.created ? m.values : { name: '', redirectUris: '', logoutUris: '', clientType: '', aal: '2', firstParty: false, idTokenAlg: DEFAULT_ID_TOKEN_ALG };
  return (
    <Layout title="Services" rpName={m.config.rpName} csrfToken={m.csrfToken} signedIn={{ displayName: m.agent.display_name }}>
      <nav aria-label="Registration authority" class="admin-nav">
        <a href="/admin">Console home</a>
      </nav>
      <h1>Services</h1>
      <ErrorSummary fields={m.errors} />
      {m.flash ? (
        <div class="notice success" role="status">
          {m.flash}
        </div>
      ) : null}
      {m.created ? (
        <div class="notice success" role="status" id="created">
          <p>
            {m.created.service.name} is registered. Client ID: <code data-client-id>{m.created.service.client_id}</code>
          </p>
          {m.created.clientSecret ? (
            <p>
              Client secret (shown once, copy it now): <code data-client-secret>{m.created.clientSecret}</code>
            </p>
          ) : null}
        </div>
      ) : null}
      {m.services.length ? (
        <table aria-label="Registered services">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Client ID</th>
              <th scope="col">Type</th>
              <th scope="col">Needs</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {m.services.map((s) => (
              <tr data-service={s.client_id}>
                <td data-label="Name">
                  {s.name}
                  {s.first_party ? ' (first party)' : ''}
                </td>
                <td data-label="Client ID">
                  <code>{s.client_id}</code>
                </td>
                <td data-label="Type">{s.client_type === 'public' ? 'Public (PKCE)' : 'Confidential'}</td>
                <td data-label="Needs">AAL{s.aal}</td>
                <td class="actions">
                  <form method="post" action={`/admin/services/${s.client_id}/remove`} class="inline">
                    <CsrfField token={m.csrfToken} />
                    <button type="submit" class="link-button">
                      Remove<span class="visually-hidden"> {s.name}</span>
                    </button>
                  </form>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p>No services are registered.</p>
      )}
      <h2 id="add-service">Register a service</h2>
      <form method="post" action="/admin/services" novalidate>
        <CsrfField token={m.csrfToken} />
        <Field id="name" label="Name" errors={m.errors}>
          <input type="text" id="name" name="name" value={v.name} maxLength={100} />
        </Field>
        <Field id="redirectUris" label="Redirect URIs" hint="One per line; compared exactly. https://, or http:// on localhost." errors={m.errors}>
          <textarea id="redirectUris" name="redirectUris" rows={3}>
            {v.redirectUris}
          </textarea>
        </Field>
        <Field id="logoutUris" label="After sign-out URIs (optional)" hint="One per line." errors={m.errors}>
          <textarea id="logoutUris" name="logoutUris" rows={2}>
            {v.logoutUris}
          </textarea>
        </Field>
        <fieldset class="radios">
          <legend>Does the service keep a secret?</legend>
          <div class="radio">
            <input type="radio" id="clientType-confidential" name="clientType" value="confidential" checked={v.clientType === 'confidential'} />
            <label for="clientType-confidential">Yes: a server-side application (confidential)</label>
          </div>
          <div class="radio">
            <input type="radio" id="clientType-public" name="clientType" value="public" checked={v.clientType === 'public'} />
            <label for="clientType-public">No: a single-page or mobile app (public, PKCE only)</label>
          </div>
        </fieldset>
        <fieldset class="radios">
          <legend>Assurance level the service needs</legend>
          {(['1', '2', '3'] as const).map((level) => (
            <div class="radio">
              <input type="radio" id={`aal-${level}`} name="aal" value={level} checked={v.aal === level} />
              <label for={`aal-${level}`}>{levelWords[toAal(Number(level))]}</label>
            </div>
          ))}
        </fieldset>
        <fieldset class="radios">
          <legend>How its ID tokens are signed</legend>
          {SIGNING_ALGS.map((alg) => (
            <div class="radio">
              <input type="radio" id={`idTokenAlg-${alg}`} name="idTokenAlg" value={alg} checked={v.idTokenAlg === alg} />
              <label for={`idTokenAlg-${alg}`}>{ID_TOKEN_ALG_WORDS[alg]}</label>
            </div>
          ))}
        </fieldset>
        <div class="checkbox">
          <input type="checkbox" id="firstParty" name="firstParty" value="yes" checked={v.firstParty} />
          <label for="firstParty">First party: run by this organisation (no consent page)</label>
        </div>
        <button type="submit">Register service</button>
      </form>
    </Layout>
  );
}
