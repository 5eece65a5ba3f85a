/**
 * The provider's configuration as oidc-provider resolves it: the discovery
 * document it serves, read over loopback HTTP from a provider built the way the
 * server builds it. `latchkey doctor` prints this beside Latchkey's own view, so
 * a default oidc-provider fills in (a response type, a grant, an auth method)
 * shows up even when Latchkey's settings never mention it.
 */
import { generateKeyPair, type JsonWebKey } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import type Provider from 'oidc-provider';
import type { JWK } from 'oidc-provider';
import type { Config } from '../config/index.js';
import type { Store } from '../db/store.js';
import { randomToken } from '../crypto.js';
import { KindRegistry } from '../strategies/kindRegistry.js';
import { defaultKinds } from '../strategies/defaultKinds.js';
import { SecretBox } from '../secretBox.js';
import { createProvider } from './provider.js';
import { SIGNING_ALGS, type SigningAlg } from './signingKeys.js';

/** The discovery fields the doctor prints, in this order (OpenID Connect Discovery 1.0 §3). */
export const DISCOVERY_FIELDS = [
  'issuer',
  'authorization_endpoint',
  'token_endpoint',
  'userinfo_endpoint',
  'jwks_uri',
  'end_session_endpoint',
  'revocation_endpoint',
  'pushed_authorization_request_endpoint',
  'introspection_endpoint',
  'registration_endpoint',
  'response_types_supported',
  'response_modes_supported',
  'grant_types_supported',
  'code_challenge_methods_supported',
  'token_endpoint_auth_methods_supported',
  'id_token_signing_alg_values_supported',
  'acr_values_supported',
  'scopes_supported',
  'claims_supported',
] as const;

export type Discovery = Record<string, unknown>;

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);
/** What Latchkey's services use: the code flow and its refresh tokens (OAuth 2.0 Security BCP §2.1.2 and §2.4). */
const EXPECTED_GRANTS = new Set(['authorization_code', 'refresh_token']);

/** GET the discovery document from the provider, with the Host and X-Forwarded-Proto the server's handoff sets. */
export async function readDiscovery(provider: Provider, origin: string): Promise<Discovery> {
  const server = createServer(provider.callback());
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const url = new URL(origin);
    return await new Promise<Discovery>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port, path: '/.well-known/openid-configuration', headers: { host: url.host, 'x-forwarded-proto': url.protocol.slice(0, -1), accept: 'application/json' } },
        (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
          res.on('end', () => {
            if (res.statusCode !== 200) return reject(new Error(`discovery answered ${res.statusCode}`));
            try {
              resolve(JSON.parse(body) as Discovery);
            } catch (err) {
              reject(err as Error);
            }
          });
        },
      );
      req.on('error', reject).end();
    });
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/**
 * Build a provider as the server would and read its discovery document, without side effects: no signing key or
 * secret key file is created. The stored signing keys are used when the secret key can open them; otherwise (none
 * yet, or the key is missing) throwaway keys stand in, one per algorithm Latchkey signs with, which change only the
 * JWKS, not the discovery document's algorithms.
 */
export async function resolveDiscovery(config: Config, store: Store, now: number): Promise<Discovery> {
  const secretKeyAvailable = config.secretKey !== undefined || existsSync(config.secretKeyFile);
  const published = await store.signingKeys.listPublished(now);
  let keys: JWK[] | undefined;
  if (!published.length || !secretKeyAvailable) keys = await Promise.all(SIGNING_ALGS.map(throwawaySigningKey));
  // The cookie keys come from the server secret; they change no discovery field, so a random one does.
  const context = { config, store, secretBox: new SecretBox(config), secret: (await store.settings.get('server_secret')) ?? randomToken(32), now: () => now, kinds: new KindRegistry(defaultKinds, config) };
  return readDiscovery(await createProvider(context, keys ? { keys } : {}), config.origin);
}

async function throwawaySigningKey(alg: SigningAlg): Promise<JWK> {
  const generate = promisify(generateKeyPair);
  const { privateKey } = alg === 'RS256' ? await generate('rsa', { modulusLength: 2048 }) : await generate('ec', { namedCurve: 'P-256' });
  return { ...(privateKey.export({ format: 'jwk' }) as JsonWebKey), kid: `doctor-${alg}`, alg, use: 'sig' } as JWK;
}

/** Warnings about the resolved configuration: what a relying party would be allowed to do that Latchkey never intends. */
export function discoveryWarnings(discovery: Discovery, configuredOrigin: string): string[] {
  const warnings: string[] = [];
  const list = (field: string) => (Array.isArray(discovery[field]) ? (discovery[field] as unknown[]).map(String) : []);
  const issuer = typeof discovery.issuer === 'string' ? discovery.issuer : '';
  if (issuer !== configuredOrigin) warnings.push(`the provider says its issuer is "${issuer}", not LATCHKEY_ORIGIN ${configuredOrigin}: relying parties will refuse its ID tokens`);
  const issuerUrl = URL.parse(issuer);
  if (issuerUrl?.protocol === 'http:' && !LOOPBACK.has(issuerUrl.hostname)) {
    warnings.push(`the issuer ${issuer} is plain http on a host other than localhost: codes and tokens would cross the network unencrypted; set LATCHKEY_ORIGIN to https://`);
  }
  for (const field of DISCOVERY_FIELDS.filter((f) => f.endsWith('_endpoint') || f === 'jwks_uri')) {
    const value = discovery[field];
    if (typeof value === 'string' && URL.parse(value)?.origin !== issuerUrl?.origin) warnings.push(`${field} ${value} is not at the issuer's origin`);
  }
  for (const type of list('response_types_supported')) {
    if (type !== 'code') warnings.push(`response type "${type}" is enabled: implicit and hybrid flows put tokens in the front channel (OAuth 2.0 Security BCP §2.1.2); use code only`);
  }
  for (const grant of list('grant_types_supported')) {
    if (!EXPECTED_GRANTS.has(grant)) warnings.push(`grant type "${grant}" is enabled: Latchkey's services use only authorization_code and refresh_token`);
  }
  const pkce = list('code_challenge_methods_supported');
  if (!pkce.length) warnings.push('no PKCE method is advertised: services cannot protect their codes (RFC 7636)');
  for (const method of pkce) if (method !== 'S256') warnings.push(`PKCE method "${method}" is accepted: only S256 protects a code that leaks (RFC 9700 §2.1.1)`);
  if (list('id_token_signing_alg_values_supported').some((alg) => alg.toLowerCase() === 'none')) warnings.push('unsigned ID tokens (alg "none") are accepted');
  if (list('token_endpoint_auth_signing_alg_values_supported').some((alg) => alg.toLowerCase() === 'none')) warnings.push('unsigned client assertions (alg "none") are accepted');
  if (discovery.registration_endpoint) warnings.push(`dynamic client registration is open at ${String(discovery.registration_endpoint)}: anyone could register a service`);
  return warnings;
}
