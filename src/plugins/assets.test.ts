import { afterEach, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../test/support/app.js';

describe('assets', () => {
  let t: TestApp | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('serve the icon every page links, revalidated by its etag, and answer the old default icon path without a 404', async () => {
    t = await createTestApp();
    const page = await t.app.inject({ method: 'GET', url: '/signin' });
    expect(page.body).toContain('<link rel="icon" href="/assets/favicon.svg" type="image/svg+xml"/>');

    const icon = await t.app.inject({ method: 'GET', url: '/assets/favicon.svg' });
    expect(icon.statusCode).toBe(200);
    expect(icon.headers['content-type']).toBe('image/svg+xml');
    expect(icon.body).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    const etag = icon.headers.etag as string;
    expect(etag).toMatch(/^"[\w-]{16}"$/);
    const again = await t.app.inject({ method: 'GET', url: '/assets/favicon.svg', headers: { 'if-none-match': etag } });
    expect(again.statusCode).toBe(304);

    const legacy = await t.app.inject({ method: 'GET', url: '/favicon.ico' });
    expect(legacy.statusCode).toBe(204);
    expect(legacy.headers['cache-control']).toBe('public, max-age=86400');
  });
});
