/**
 * Services: the OpenID Connect clients people sign in to with Latchkey
 * (`latchkey services add`). Each has exact redirect URIs, is public (PKCE
 * only) or confidential (a secret, shown once, sealed at rest), and names the
 * assurance level a sign-in must reach before it receives a token. Added and
 * removed both from the console (/admin/services) and from the CLI.
 */
import { randomToken } from '../crypto.js';
import type { Service, ServiceClientType } from '../db/schema.js';
import type { Store } from '../db/store.js';
import type { SecretBox } from '../secretBox.js';
import type { Aal } from '../strategies/authenticatorKind.js';
import { DEFAULT_ID_TOKEN_ALG, isSigningAlg, type SigningAlg } from './signingKeys.js';

export class ServiceInputError extends Error {}

export interface NewServiceInput {
  name: string;
  redirectUris: string[];
  postLogoutRedirectUris?: string[];
  clientType: ServiceClientType;
  aal: Aal;
  firstParty: boolean;
  /** How its ID tokens are signed; DEFAULT_ID_TOKEN_ALG (ES256) unless the relying party needs RS256. */
  idTokenAlg?: SigningAlg;
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/** RFC 6749 §3.1.2 and OAuth 2.0 Security BCP §4.1: absolute, no fragment, compared exactly; https except on loopback. */
export function checkRedirectUri(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ServiceInputError(`not an absolute URL: "${raw}"`);
  }
  if (url.hash || raw.includes('#')) throw new ServiceInputError(`a redirect URI has no fragment: "${raw}"`);
  if (url.username || url.password) throw new ServiceInputError(`a redirect URI has no credentials: "${raw}"`);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK.has(url.hostname))) {
    throw new ServiceInputError(`must be https:// (http:// only for localhost): "${raw}"`);
  }
  return raw;
}

/**
 * The origins a browser may call the token, userinfo and revocation endpoints from (CORS) on a service's behalf:
 * a public service runs in the browser at its redirect URIs' origins; a confidential one calls from its server,
 * so none. Discovery and the JWKS are public and open to every origin.
 */
export function corsOriginsOf(service: { public: boolean; redirectUris: readonly string[] }): string[] {
  if (!service.public) return [];
  return [...new Set(service.redirectUris.flatMap((uri) => URL.parse(uri)?.origin ?? []))].filter((origin) => origin !== 'null');
}

/** Whether any registered service lets a browser at this origin call the token, userinfo or revocation endpoints. */
export async function isServiceCorsOrigin(store: Store, origin: string): Promise<boolean> {
  const services = await store.services.list();
  return services.some((s) => corsOriginsOf({ public: s.client_type === 'public', redirectUris: JSON.parse(s.redirect_uris) as string[] }).includes(origin));
}

export async function addService(store: Store, secretBox: SecretBox, input: NewServiceInput, now: number): Promise<{ service: Service; clientSecret?: string }> {
  const name = input.name.trim();
  if (!name || name.length > 100) throw new ServiceInputError('--name is 1 to 100 characters');
  if (!input.redirectUris.length) throw new ServiceInputError('at least one --redirect-uri is needed');
  if (![1, 2, 3].includes(input.aal)) throw new ServiceInputError('--aal is 1, 2 or 3');
  const idTokenAlg = input.idTokenAlg ?? DEFAULT_ID_TOKEN_ALG;
  if (!isSigningAlg(idTokenAlg)) throw new ServiceInputError('--id-token-alg is ES256 or RS256');
  const redirectUris = input.redirectUris.map(checkRedirectUri);
  const logoutUris = (input.postLogoutRedirectUris ?? []).map(checkRedirectUri);
  const clientId = randomToken(16);
  const clientSecret = input.clientType === 'confidential' ? randomToken(32) : undefined;
  const service: Service = {
    client_id: clientId,
    name,
    client_type: input.clientType,
    client_secret: clientSecret ? secretBox.seal(clientSecret, `service-secret:${clientId}`) : null,
    redirect_uris: JSON.stringify(redirectUris),
    post_logout_redirect_uris: JSON.stringify(logoutUris),
    aal: input.aal,
    first_party: input.firstParty ? 1 : 0,
    created_at: now,
    id_token_alg: idTokenAlg,
  };
  await store.services.insert(service);
  return clientSecret ? { service, clientSecret } : { service };
}

/**
 * Remove a service; the removed one, or undefined if there was none with that id.
 * Its stored grants and tokens are left to expire: oidc-provider looks the client up on every use, so with the
 * service gone its access tokens fail at userinfo (invalid_token) and its refresh tokens at the token endpoint
 * (invalid_client).
 */
export async function removeService(store: Store, clientId: string): Promise<Service | undefined> {
  const service = await store.services.find(clientId);
  if (!service || !(await store.services.remove(service.client_id))) return undefined;
  return service;
}
