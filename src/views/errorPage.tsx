import type { FastifyRequest } from 'fastify';
import type { AppError, ErrorCode } from '../errors.js';
import { ErrorSummary, Layout } from './layout.js';
import { renderPage } from './render.js';

const titles: Record<number, string> = { 404: 'Page not found', 410: 'This page can no longer be used', 413: 'Request too large', 429: 'Too many attempts' };

/** Where the status alone would name the wrong thing: a code is not a link, and neither is a page left too long. */
const codeTitles: Partial<Record<ErrorCode, string>> = {
  invite_expired: 'This link can no longer be used',
  invite_used: 'This link can no longer be used',
  invite_revoked: 'This link can no longer be used',
  email_code_burned: 'This code can no longer be used',
  email_code_expired: 'This code can no longer be used',
  enrolment_code_expired: 'This code can no longer be used',
  enrolment_code_used: 'This code can no longer be used',
  enrolment_code_revoked: 'This code can no longer be used',
  flow_expired: 'This page has expired',
  interaction_expired: 'This sign-in request can no longer be used',
};

const nextSteps: Partial<Record<string, { href: string; text: string }>> = {
  invite_used: { href: '/signin', text: 'Sign in with your passkey' },
  invite_expired: { href: '/signin', text: 'Go to sign in' },
  invite_revoked: { href: '/signin', text: 'Go to sign in' },
  invite_invalid: { href: '/signin', text: 'Go to sign in' },
  not_signed_in: { href: '/signin', text: 'Sign in' },
  flow_expired: { href: '/', text: 'Start again' },
  csrf_failed: { href: '/', text: 'Go back to the start' },
  upstream_failed: { href: '/signin', text: 'Sign in another way' },
  upstream_unavailable: { href: '/signin', text: 'Sign in another way' },
  linked_account_unknown: { href: '/signin', text: 'Sign in another way' },
  email_code_burned: { href: '/add-authenticator', text: 'Start again to get a new code' },
  enrolment_code_expired: { href: '/enrol', text: 'Enter a new code' },
  interaction_expired: { href: '/settings', text: 'Go to your Login and security settings' },
};

export function renderErrorPage(request: FastifyRequest, err: AppError): string {
  const title = codeTitles[err.code] ?? titles[err.status] ?? (err.status >= 500 ? 'Sorry, there is a problem with the service' : 'There is a problem');
  const next = nextSteps[err.code] ?? { href: '/', text: 'Go to the start page' };
  return renderPage(
    // The token only for someone signed in (the layout's sign-out form): reading it gives a browser without a binding
    // cookie one, and an error page, a 404 among them, starts nothing that needs it.
    <Layout title={title} rpName={request.server.latchkey.config.rpName} csrfToken={request.auth ? request.csrfToken : ''} page="error">
      <h1>{title}</h1>
      <ErrorSummary message={err.message} fields={err.fields} />
      <p data-error-code={err.code}>
        <a href={next.href}>{next.text}</a>
      </p>
    </Layout>,
  );
}
