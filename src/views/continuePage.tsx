import type { FastifyReply } from 'fastify';
import type { Config } from '../config/index.js';
import { Layout } from './layout.js';
import { renderPage } from './render.js';
import { html } from '../http/replies.js';

/**
 * A page that moves on to `href` (a local path) by script, with a link for
 * browsers without it. Form posts that continue to another site (an OpenID
 * Connect service) end here instead of in a redirect, which the page's CSP
 * form-action 'self' would stop in Chromium.
 */
export function sendContinuePage(reply: FastifyReply, config: Config, csrfToken: string, href: string, what = 'Continue'): FastifyReply {
  return html(
    reply,
    renderPage(
      <Layout title="Signed in" rpName={config.rpName} csrfToken={csrfToken} page="continue">
        <h1>Signed in</h1>
        <p>
          <a id="continue-link" class="button" href={href}>
            {what}
          </a>
        </p>
      </Layout>,
    ),
  );
}

/** True for a local path that leads back into an OpenID Connect interaction. */
export function leadsToService(next: string | undefined): next is string {
  return !!next && next.startsWith('/interaction/');
}

/**
 * On to `next` (a local path) at the end of a form post: a waiting service through the continue page, anywhere else by
 * a 303 redirect.
 */
export function sendOnward(reply: FastifyReply, config: Config, csrfToken: string, next: string): FastifyReply {
  return leadsToService(next) ? sendContinuePage(reply, config, csrfToken, next) : reply.redirect(next, 303);
}
