import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/index.js';
import { SignInPage } from '../flows/signin/views.js';
import { pageWithToken, renderPage } from './render.js';

describe('pageWithToken', () => {
  const config = loadConfig({ LATCHKEY_ORIGIN: 'http://localhost:3000' });
  const render = (csrfToken: string) => <SignInPage config={config} csrfToken={csrfToken} noScript={false} />;

  it('gives the page rendered with each request token, from one rendering', () => {
    const page = pageWithToken(render);
    for (const token of ['tokenA_-1', 'another-Token_2']) {
      const filled = page(token);
      expect(filled).toBe(renderPage(render(token)));
      expect(filled).toContain(`<meta name="csrf-token" content="${token}"/>`);
    }
  });
});
