import { describe, expect, it } from 'vitest';
import { createTestApp } from '../../test/support/app.js';
import { discoveryWarnings, readDiscovery } from './resolvedConfiguration.js';

const ORIGIN = 'https://id.example.org';

/** A discovery document as a safe Latchkey serves it. */
const safe = {
  issuer: ORIGIN,
  authorization_endpoint: `${ORIGIN}/oidc/auth`,
  token_endpoint: `${ORIGIN}/oidc/token`,
  jwks_uri: `${ORIGIN}/oidc/jwks`,
  response_types_supported: ['code'],
  grant_types_supported: ['authorization_code', 'refresh_token'],
  code_challenge_methods_supported: ['S256'],
  token_endpoint_auth_methods_supported: ['client_secret_basic', 'none'],
  id_token_signing_alg_values_supported: ['RS256'],
};

describe('the resolved provider configuration', () => {
  it('is what the running provider serves at discovery', async () => {
    const t = await createTestApp();
    try {
      const discovery = await readDiscovery(t.app.latchkey.oidc!, t.app.latchkey.config.origin);
      expect(discovery).toMatchObject({ issuer: t.app.latchkey.config.origin, response_types_supported: ['code'], code_challenge_methods_supported: ['S256'] });
      expect(discoveryWarnings(discovery, t.app.latchkey.config.origin)).toEqual([]);
    } finally {
      await t.close();
    }
  });

  it('has no warnings when only the code flow with S256 PKCE is open', () => {
    expect(discoveryWarnings(safe, ORIGIN)).toEqual([]);
  });

  it('warns about implicit and hybrid response types, extra grants, plain PKCE and alg none', () => {
    const warnings = discoveryWarnings(
      {
        ...safe,
        response_types_supported: ['code', 'id_token token', 'code id_token'],
        grant_types_supported: ['authorization_code', 'implicit', 'client_credentials'],
        code_challenge_methods_supported: ['S256', 'plain'],
        id_token_signing_alg_values_supported: ['RS256', 'none'],
        registration_endpoint: `${ORIGIN}/oidc/reg`,
      },
      ORIGIN,
    );
    expect(warnings).toEqual([
      'response type "id_token token" is enabled: implicit and hybrid flows put tokens in the front channel (OAuth 2.0 Security BCP §2.1.2); use code only',
      'response type "code id_token" is enabled: implicit and hybrid flows put tokens in the front channel (OAuth 2.0 Security BCP §2.1.2); use code only',
      'grant type "implicit" is enabled: Latchkey\'s services use only authorization_code and refresh_token',
      'grant type "client_credentials" is enabled: Latchkey\'s services use only authorization_code and refresh_token',
      'PKCE method "plain" is accepted: only S256 protects a code that leaks (RFC 9700 §2.1.1)',
      'unsigned ID tokens (alg "none") are accepted',
      `dynamic client registration is open at ${ORIGIN}/oidc/reg: anyone could register a service`,
    ]);
    expect(discoveryWarnings({ ...safe, code_challenge_methods_supported: undefined }, ORIGIN)).toEqual([
      'no PKCE method is advertised: services cannot protect their codes (RFC 7636)',
    ]);
  });

  it('warns about an http issuer beyond localhost, one that is not the configured origin, and endpoints elsewhere', () => {
    const http = 'http://id.example.org';
    const plain = discoveryWarnings({ ...safe, issuer: http, token_endpoint: `${http}/oidc/token`, authorization_endpoint: `${http}/oidc/auth`, jwks_uri: `${http}/oidc/jwks` }, http);
    expect(plain).toEqual([
      'the issuer http://id.example.org is plain http on a host other than localhost: codes and tokens would cross the network unencrypted; set LATCHKEY_ORIGIN to https://',
    ]);
    expect(discoveryWarnings({ ...safe, issuer: 'http://localhost:3000', token_endpoint: 'http://localhost:3000/oidc/token', authorization_endpoint: 'http://localhost:3000/oidc/auth', jwks_uri: 'http://localhost:3000/oidc/jwks' }, 'http://localhost:3000')).toEqual([]);
    const elsewhere = discoveryWarnings({ ...safe, token_endpoint: 'https://proxy.internal/oidc/token' }, 'https://other.example.org');
    expect(elsewhere).toEqual([
      'the provider says its issuer is "https://id.example.org", not LATCHKEY_ORIGIN https://other.example.org: relying parties will refuse its ID tokens',
      'token_endpoint https://proxy.internal/oidc/token is not at the issuer\'s origin',
    ]);
  });
});
