/**
 * The console's gate (guard.ts): access is decided from the route that matched,
 * whatever spelling of the URL reached it; every console route declares its
 * permission, and one without is refused at start.
 */
import Fastify from 'fastify';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticator, createTestApp, signUp, TestBrowser, type TestApp } from '../../test/support/app.js';
import type { Role } from '../db/schema.js';
import { issueInvite } from '../flows/enrolment/invites.js';
import { ANY_ROLE, consoleRoutes, guardConsole } from './guard.js';
import { can, PERMISSIONS } from './roles.js';

const roles: Record<string, Role[] | null> = {
  'signed out': null,
  'no role': [],
  'RA Agent': ['ra_agent'],
  'RA Agent (Advanced)': ['ra_agent_advanced'],
  'RA Manager': ['ra_manager'],
  Auditor: ['auditor'],
};

/** Other spellings of a path the way an attacker would try them. `same` when the router must read it as the same path. */
function variants(path: string): { name: string; url: string; same: boolean }[] {
  const segments = path.split('/').slice(1);
  const encodeFirst = (s: string) => (/^[a-z]/.test(s) ? `%${s.charCodeAt(0).toString(16)}${s.slice(1)}` : s);
  const staticOnly = (s: string, i: number) => (i === 0 || !/^[A-Za-z0-9_-]{20,}$/.test(s) ? encodeFirst(s) : s);
  return [
    { name: '%61', url: `/%61${path.slice(2)}`, same: true },
    { name: 'every static segment percent-encoded', url: '/' + segments.map(staticOnly).join('/'), same: true },
    { name: '%2F', url: path === '/admin' ? '/%2Fadmin' : path.replace(/^\/admin\//, '/admin%2F'), same: true },
    { name: 'double slash in front', url: `/${path}`, same: true },
    { name: 'double slash inside', url: path === '/admin' ? '/admin//' : path.replace(/^\/admin\//, '/admin//'), same: true },
    { name: 'trailing dot', url: `${path}.`, same: true },
    { name: 'dot segment', url: path.replace(/^\/admin/, '/admin/.'), same: true },
    { name: 'double-encoded', url: `/%2561${path.slice(2)}`, same: false },
  ];
}

/** What a person or client sees of an answer, without the parts that change between two requests (CSRF token, new audit rows). */
function summary(res: LightMyRequestResponse) {
  const type = String(res.headers['content-type'] ?? '').split(';')[0];
  let key = '';
  if (type === 'text/html') key = /<h1[^>]*>([\s\S]*?)<\/h1>/.exec(res.body)?.[1] ?? '';
  else if (type === 'application/json') key = res.body;
  else if (type === 'text/csv') key = res.body.split('\r\n')[0]!;
  return { status: res.statusCode, location: res.headers.location, type, key };
}

describe('the console gate', () => {
  let t: TestApp;
  const browsers = new Map<string, TestBrowser>();
  let ids: Record<string, string>;
  beforeAll(async () => {
    t = await createTestApp();
    const store = t.app.latchkey.store;
    let n = 0;
    for (const [label, r] of Object.entries(roles)) {
      if (r === null) {
        const b = new TestBrowser(t.app);
        await b.get('/signin');
        browsers.set(label, b);
        continue;
      }
      const email = `agent-${++n}@example.org`;
      browsers.set(label, await signUp(t.app, authenticator(), email, `Agent ${n}`));
      await store.roles.set((await store.users.findByEmail(email))!.id, r, null, Date.now());
    }
    await signUp(t.app, authenticator(), 'person@example.org', 'Person');
    const person = (await store.users.findByEmail('person@example.org'))!;
    const [passkey] = await store.authenticators.listForUser(person.id);
    const { flowId } = await issueInvite(store, t.config, person, Date.now(), { method: 'link' });
    ids = { id: person.id, authenticatorId: passkey!.id, flowId, templateId: 'default', clientId: 'no-such-service' };
  });
  afterAll(async () => t.close());

  it('every console route declares a permission from the roles table, and /admin/services is one of them', () => {
    const routes = consoleRoutes(t.app);
    expect(routes.length).toBeGreaterThan(25);
    for (const r of routes) expect([...PERMISSIONS, ANY_ROLE], `${r.method} ${r.url}`).toContain(r.permission);
    expect(routes.filter((r) => r.url.startsWith('/admin/services')).map((r) => `${r.method} ${r.url}`).sort()).toEqual([
      'GET /admin/services',
      'POST /admin/services',
      'POST /admin/services/:clientId/remove',
    ]);
    expect(routes.find((r) => r.method === 'GET' && r.url === '/admin')!.permission).toBe(ANY_ROLE);
  });

  it('refuses to start when a console route declares no permission', async () => {
    const app = Fastify();
    app.decorate('latchkey', t.app.latchkey);
    void app.register(async (console) => {
      guardConsole(console, async (_request, reply) => reply.send('no role'));
      console.get('/admin/forgotten', async () => 'open to anyone');
    });
    await expect(app.ready()).rejects.toThrow(/GET \/admin\/forgotten declares no permission/);
    await app.close().catch(() => {});
  });

  it('answers every console route under every spelling of its URL as it answers /admin/…, for every role', async () => {
    const routes = consoleRoutes(t.app);
    // Reads use real people and records; writes use ids that match nothing and an empty form, so nothing changes.
    const fill = (url: string, write: boolean) => url.replace(/:(\w+)/g, (_, name: string) => (write ? `no-such-${name}` : ids[name]!));
    let compared = 0;
    for (const route of routes) {
      const write = route.method === 'POST';
      const path = fill(route.url, write);
      for (const [label, r] of Object.entries(roles)) {
        const b = browsers.get(label)!;
        const send = (url: string) => (write ? b.postForm(url, {}) : b.get(url));
        const canonical = summary(await send(path));
        const where = `${label} ${route.method} ${path}`;
        expect(canonical.status, where).toBeLessThan(500);
        // What the declared permission says this role gets.
        const allowed = r !== null && r.length > 0 && (route.permission === ANY_ROLE || can(r, route.permission));
        if (r === null) expect(write ? canonical.status : canonical.location, where).toBe(write ? 401 : `/signin?next=${encodeURIComponent(path)}`);
        else if (!allowed) expect(canonical.status, where).toBe(403);
        else expect(canonical.status, where).not.toBe(403);
        for (const v of variants(path)) {
          const res = summary(await send(v.url));
          const at = `${where} as ${v.name} (${v.url})`;
          expect(res.status, at).toBeLessThan(500);
          if (v.same) expect(res, at).toEqual(canonical);
          // Any other spelling matches no route (404), or another route whose own permission and schema
          // refuse it (\`/admin/users/new.\` is a user id with a dot): never a page or an action.
          else if (r === null && !write && res.status === 302) expect(res.location, at).toMatch(/^\/signin\?next=/);
          else expect(res.status, at).toBeGreaterThanOrEqual(400);
          compared++;
        }
      }
    }
    expect(compared).toBeGreaterThan(1000);
  });

  it('the home page answers /%61dmin as /admin, signed out too (it answered 500)', async () => {
    for (const [label, b] of browsers) {
      const canonical = await b.get('/admin');
      const encoded = await b.get('/%61dmin');
      expect(encoded.statusCode, label).toBe(canonical.statusCode);
      expect(encoded.headers.location, label).toBe(canonical.headers.location);
      const json = await b.get('/%61dmin', 'application/json');
      expect(json.statusCode, label).toBeLessThan(500);
    }
  });
});
