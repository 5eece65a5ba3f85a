import type { VNode } from 'preact';
import { renderToString } from 'preact-render-to-string';
import { randomToken } from '../crypto.js';

/** Render a page component to a full HTML document. Text is escaped by preact. */
export function renderPage(vnode: VNode): string {
  return '<!doctype html>' + renderToString(vnode);
}

/**
 * A page that differs from one request to the next only by its CSRF token (the sign-in page a signed-out browser
 * loads before every sign-in): rendered once, on first use, and filled in with each request's token. Rendering the
 * whole tree each time was about 4 % of a sign-in's event-loop time (BENCHMARKS.md). CSRF tokens are base64url, so
 * they read the same escaped or not.
 */
export function pageWithToken(render: (csrfToken: string) => VNode): (csrfToken: string) => string {
  const marker = `csrf${randomToken(16)}`;
  let parts: string[] | undefined;
  return (csrfToken) => (parts ??= renderPage(render(marker)).split(marker)).join(csrfToken);
}
