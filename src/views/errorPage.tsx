import type { FastifyRequest } from 'fastify';
import type { AppError } from '../errors.js';
import { ErrorSummary, Layout } from './layout.js';
import { renderPage } from './render.js';

const titles: Record<number, string> = { 404: 'Page not found', 410: 'This link can no longer be used', 413: 'Request too large', 429: 'Too many attempts' };

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
  email_code_burned: { href: '/add-authenticator', text: 'Start again' },
  enrolment_code_expired: { href: '/enrol', text: 'Enter a new code' },
  interaction_expired: { href: '/settings', text: 'Go to your Login and security settings' },
};

export function renderErrorPage(request: FastifyRequest, err: AppError): string {
  const title = titles[err.status] ?? (err.status >= 500 ? 'Sorry, there is a problem with the service' : 'There is a problem');
  const next = nextSteps[err.code] ?? { href: '/', text: 'Go to the start page' };
  return renderPage(
    <Layout title={title} rpName={request.server.latchkey.config.rpName} csrfToken={request.csrfToken ?? ''} page="error">
      <h1>{title}</h1>
      <ErrorSummary message={err.message} fields={err.fields} />
      <p data-error-code={err.code}>
        <a href={next.href}>{next.text}</a>
      </p>
    </Layout>,
  );
}
