/**
 * A real relying party (openid-client) in the test process: its requests are
 * answered by the app through app.inject, and a TestBrowser follows the
 * browser's side of the authorization request.
 */
import * as client from 'openid-client';
import type { LightMyRequestResponse } from 'fastify';
import { TEST_ORIGIN, type TestApp, type TestBrowser } from './app.js';

/** openid-client's fetch, answered by the app in this process. */
export function injectFetch(app: TestApp['app']): client.CustomFetch {
  return async (url, options) => {
    const u = new URL(url);
    const headers: Record<string, string> = {};
    new Headers(options.headers as HeadersInit).forEach((v, k) => (headers[k] = v));
    const res = await app.inject({ method: options.method as 'GET', url: u.pathname + u.search, headers, payload: options.body === undefined || options.body === null ? undefined : String(options.body) });
    const out = new Headers();
    for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) out.set(k, Array.isArray(v) ? v.join(', ') : String(v));
    return new Response(res.statusCode === 204 ? null : new Uint8Array(res.rawPayload), { status: res.statusCode, headers: out });
  };
}

/** Follow redirects on our origin; stop at the first one leaving it (the service's redirect URI) or at a page. */
export async function follow(browser: TestBrowser, start: string): Promise<{ res: LightMyRequestResponse; url: string }> {
  let url = start;
  for (let i = 0; i < 20; i++) {
    const res = await browser.get(url.startsWith(TEST_ORIGIN) ? url.slice(TEST_ORIGIN.length) : url);
    const location = res.headers.location as string | undefined;
    if (res.statusCode < 300 || res.statusCode >= 400 || !location) return { res, url };
    const next = new URL(location, TEST_ORIGIN).toString();
    if (!next.startsWith(TEST_ORIGIN)) return { res, url: next };
    url = next;
  }
  throw new Error('too many redirects');
}

/** A confidential first-party service's relying party, discovered from the app. */
export async function discoverRelyingParty(app: TestApp['app'], clientId: string, clientSecret: string): Promise<client.Configuration> {
  return client.discovery(new URL(TEST_ORIGIN), clientId, undefined, client.ClientSecretBasic(clientSecret), {
    execute: [client.allowInsecureRequests],
    [client.customFetch]: injectFetch(app),
  });
}
