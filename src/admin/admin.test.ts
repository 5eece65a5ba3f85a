/**
 * The registration-authority console over HTTP: every role × action pair,
 * issuing links, codes and emails (through a real SMTP server), redemption
 * races, removal, templates and the audit log.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { authenticator, createTestApp, signUp, TestBrowser, type TestApp } from '../../test/support/app.js';
import { startSmtpSink, type SmtpSink } from '../../test/support/smtpSink.js';
import { expectConfirmError } from '../../test/support/pages.js';
import type { Role, User } from '../db/schema.js';
import { createUser } from '../users/createUser.js';
import { CODE_MAX_ATTEMPTS, formatCode, issueInvite } from '../flows/enrolment/invites.js';
import { csvCell } from './csvCell.js';
import { ANY_ROLE, consoleRoutes } from './guard.js';
import { addService } from '../oidc/services.js';
import { AuditPersister } from '../db/persisters/audit.js';
import { createApiToken } from '../api/apiTokens.js';
import { checkImportFile } from '../users/import/importJobs.js';
import type { SoftAuthenticator } from '../../test/support/softAuthenticator.js';

const T0 = Date.UTC(2026, 10, 22, 9);

let sink: SmtpSink;
beforeAll(async () => {
  sink = await startSmtpSink();
});
afterAll(async () => sink.close());

interface Fixture {
  t: TestApp;
  clock: { now: number };
  /** Sign up a person in their own browser and give them roles. */
  agent(roles: Role[], email?: string): Promise<{ browser: TestBrowser; user: User; auth: SoftAuthenticator }>;
  /** A person with one passkey, signed in in their own browser. */
  person(email?: string): Promise<{ browser: TestBrowser; user: User; auth: SoftAuthenticator }>;
  close(): Promise<void>;
}

let counter = 0;
async function fixture(env: Record<string, string> = {}): Promise<Fixture> {
  const clock = { now: T0 };
  const t = await createTestApp({ LATCHKEY_SMTP_URL: sink.url, LATCHKEY_ORGANISATION: 'St Elsewhere NHS Trust', ...env }, { now: () => clock.now });
  const store = t.app.latchkey.store;
  const person = async (email = `person-${++counter}@example.org`) => {
    const auth = authenticator();
    const browser = await signUp(t.app, auth, email, `Person ${counter}`);
    const user = (await store.users.findByEmail(email))!;
    return { browser, user, auth };
  };
  return {
    t,
    clock,
    person,
    async agent(roles, email) {
      const p = await person(email ?? `agent-${++counter}@example.org`);
      await store.roles.set(p.user.id, roles, null, clock.now);
      return p;
    },
    close: () => t.close(),
  };
}

/** Every row a console action could change: a refused action must leave all of it as it was (it adds only the record of the refusal). */
async function snapshot(t: TestApp): Promise<string> {
  const k = t.db.kysely;
  const tables = ['users', 'authenticators', 'flows', 'roles', 'email_templates', 'sessions', 'settings', 'api_tokens', 'webhook_endpoints', 'webhook_deliveries'] as const;
  const out: Record<string, unknown> = {};
  for (const table of tables) out[table] = await k.selectFrom(table).selectAll().execute();
  out.audit_events = await k.selectFrom('audit_events').selectAll().where('outcome', '=', 'success').execute();
  return JSON.stringify(out);
}

/** The newest record of a refusal or failure by this person. */
async function lastRefusal(t: TestApp, actorUserId: string) {
  const row = await t.db.kysely.selectFrom('audit_events').selectAll().where('outcome', '<>', 'success').where('actor_user_id', '=', actorUserId).orderBy('id', 'desc').limit(1).executeTakeFirst();
  return row && { ...row, detail: JSON.parse(row.detail) as Record<string, unknown> };
}

const agentRoles: Record<string, Role[]> = {
  'RA Manager': ['ra_manager'],
  'RA Agent (Advanced)': ['ra_agent_advanced'],
  'RA Agent': ['ra_agent'],
  Auditor: ['auditor'],
  'no role': [],
};

/** `console`: what every role may do (the home page). */
type Permission = 'console' | 'view' | 'add' | 'edit' | 'issue' | 'remove' | 'roles' | 'templates' | 'services' | 'policy' | 'audit' | 'tokens' | 'webhooks';
const allowedFor: Record<string, Permission[]> = {
  'RA Manager': ['console', 'view', 'add', 'edit', 'issue', 'remove', 'roles', 'templates', 'services', 'policy', 'audit', 'tokens', 'webhooks'],
  'RA Agent (Advanced)': ['console', 'view', 'add', 'edit', 'issue', 'remove'],
  'RA Agent': ['console', 'view'],
  Auditor: ['console', 'audit'],
  'no role': [],
};

interface Target {
  user: User;
  authenticatorId: string;
  flowId: string;
  /** The enrolment link's token (the agent's page holds it for "send by email"). */
  token: string;
  templateId: string;
  clientId: string;
  apiTokenId: string;
  /** An active webhook endpoint, a paused one, and a failed delivery of the active one. */
  endpointId: string;
  pausedEndpointId: string;
  deliveryId: string;
  /** A checked import (uploaded by someone else). */
  importId: string;
}

interface Action {
  name: string;
  needs: Permission;
  request(b: TestBrowser, target: Target): Promise<{ statusCode: number; body: string }>;
  /** True when the action is one that changes something (checked by the snapshot). */
  writes: boolean;
}

/** A one-person CSV file for the import actions, a new person each time. */
const importFile = () => ({ field: 'file', filename: 'staff.csv', content: `name,email\nImported Person,imported-${++counter}@example.org\n` });

const actions: Action[] = [
  { name: 'open the console home page', needs: 'console', writes: false, request: (b) => b.get('/admin') },
  { name: 'search users', needs: 'view', writes: false, request: (b) => b.get('/admin/users?q=person') },
  { name: 'view details', needs: 'view', writes: false, request: (b, x) => b.get(`/admin/users/${x.user.id}`) },
  { name: 'view authenticators', needs: 'view', writes: false, request: (b, x) => b.get(`/admin/users/${x.user.id}/authenticators`) },
  { name: 'view activity', needs: 'view', writes: false, request: (b, x) => b.get(`/admin/users/${x.user.id}/activity`) },
  { name: 'read enrolment status', needs: 'view', writes: false, request: (b, x) => b.get(`/admin/enrolments/${x.flowId}/status`, 'application/json') },
  { name: 'open add user', needs: 'add', writes: false, request: (b) => b.get('/admin/users/new') },
  { name: 'add user', needs: 'add', writes: true, request: (b) => b.postForm('/admin/users/new', { name: 'New Person', email: `new-${++counter}@example.org` }) },
  { name: 'set national identifier', needs: 'edit', writes: true, request: (b, x) => b.postForm(`/admin/users/${x.user.id}/national-id`, { nationalId: 'AB 12 34 56 C' }) },
  { name: 'suspend user', needs: 'edit', writes: true, request: (b, x) => b.postForm(`/admin/users/${x.user.id}/status`, { action: 'suspend' }) },
  { name: 'open choose authenticator type', needs: 'issue', writes: false, request: (b, x) => b.get(`/admin/users/${x.user.id}/issue`) },
  { name: 'choose passkey', needs: 'issue', writes: false, request: (b, x) => b.postForm(`/admin/users/${x.user.id}/issue`, { type: 'passkey' }) },
  { name: 'open issue page', needs: 'issue', writes: false, request: (b, x) => b.get(`/admin/users/${x.user.id}/issue/passkey`) },
  { name: 'open security key issue page', needs: 'issue', writes: false, request: (b, x) => b.get(`/admin/users/${x.user.id}/issue/security-key`) },
  { name: 'generate link', needs: 'issue', writes: true, request: (b, x) => b.postForm(`/admin/users/${x.user.id}/enrolments`, { method: 'link' }) },
  { name: 'generate code', needs: 'issue', writes: true, request: (b, x) => b.postForm(`/admin/users/${x.user.id}/enrolments`, { method: 'code' }) },
  { name: 'send enrolment email', needs: 'issue', writes: true, request: (b, x) => b.postForm(`/admin/users/${x.user.id}/enrolments`, { method: 'email' }) },
  {
    name: 'send a generated link by email',
    needs: 'issue',
    writes: true,
    request: (b, x) => b.postForm(`/admin/users/${x.user.id}/enrolments/${x.flowId}/email`, { token: x.token }),
  },
  { name: 'open the page of an issued link', needs: 'issue', writes: false, request: (b, x) => b.get(`/admin/users/${x.user.id}/enrolments/${x.flowId}`) },
  { name: 'revoke a link', needs: 'issue', writes: true, request: (b, x) => b.postForm(`/admin/users/${x.user.id}/enrolments/${x.flowId}/revoke`, {}) },
  { name: 'open remove page', needs: 'remove', writes: false, request: (b, x) => b.get(`/admin/users/${x.user.id}/authenticators/${x.authenticatorId}/remove`) },
  {
    name: 'remove authenticator',
    needs: 'remove',
    writes: true,
    request: (b, x) => b.postForm(`/admin/users/${x.user.id}/authenticators/${x.authenticatorId}/remove`, { confirm: 'yes' }),
  },
  { name: 'change roles', needs: 'roles', writes: true, request: (b, x) => b.postForm(`/admin/users/${x.user.id}/roles`, { roles: 'ra_agent' }) },
  { name: 'list templates', needs: 'templates', writes: false, request: (b) => b.get('/admin/templates') },
  { name: 'open new template', needs: 'templates', writes: false, request: (b) => b.get('/admin/templates/new') },
  { name: 'open a template', needs: 'templates', writes: false, request: (b, x) => b.get(`/admin/templates/${x.templateId}`) },
  { name: 'delete a template', needs: 'templates', writes: true, request: (b, x) => b.postForm(`/admin/templates/${x.templateId}/delete`, {}) },
  {
    name: 'add template',
    needs: 'templates',
    writes: true,
    request: (b) => b.postForm('/admin/templates/new', { name: 'Welcome', subject: 'Hello {{name}}', body: 'Open {{link}}', action: 'save' }),
  },
  {
    name: 'edit default template',
    needs: 'templates',
    writes: true,
    request: (b) => b.postForm('/admin/templates/default', { name: 'Default', subject: 'Passkey for {{organisation}}', body: 'Open {{link}}', action: 'save' }),
  },
  { name: 'list services', needs: 'services', writes: false, request: (b) => b.get('/admin/services') },
  {
    name: 'register a service',
    needs: 'services',
    writes: true,
    request: (b) => b.postForm('/admin/services', { name: 'Rota', redirectUris: 'https://rota.example.org/callback', clientType: 'confidential', aal: '2' }),
  },
  { name: 'remove a service', needs: 'services', writes: true, request: (b, x) => b.postForm(`/admin/services/${x.clientId}/remove`, {}) },
  { name: 'open the authenticator policy', needs: 'policy', writes: false, request: (b) => b.get('/admin/policy') },
  {
    name: 'save the authenticator policy',
    needs: 'policy',
    writes: true,
    // A change that leaves every later registration here as it was: no model is marked compromised.
    request: (b) => b.postForm('/admin/policy', { allowedModels: '', deniedModels: '', minimumCertification: '', syncedPasskeys: 'allowed', aal3MinimumCertification: '', compromised: 'refuse' }),
  },
  { name: 'open import users', needs: 'add', writes: false, request: (b) => b.get('/admin/users/import') },
  { name: 'download the example import file', needs: 'add', writes: false, request: (b) => b.get('/admin/users/import/example.csv') },
  // A check writes only its job row (not in the snapshot): no user until the import is started.
  { name: 'upload a file to import', needs: 'add', writes: false, request: (b) => b.postMultipart('/admin/users/import', {}, importFile()) },
  { name: 'view an import', needs: 'add', writes: false, request: (b, x) => b.get(`/admin/imports/${x.importId}`) },
  { name: 'download an import report', needs: 'add', writes: false, request: (b, x) => b.get(`/admin/imports/${x.importId}/report.csv`) },
  {
    name: 'start an import',
    needs: 'add',
    writes: true,
    // Only the uploader may start a check: upload one, start it and wait for the job (an agent who may not upload
    // starts someone else's check instead, and is refused by the gate all the same).
    request: async (b, x) => {
      const uploaded = await b.postMultipart('/admin/users/import', {}, importFile());
      const id = uploaded.statusCode === 303 ? String(uploaded.headers.location).split('/').pop()! : x.importId;
      const res = await b.postForm(`/admin/imports/${id}/start`, {});
      if (res.statusCode === 303) for (let i = 0; i < 200 && (await b.get(`/admin/imports/${id}`)).body.includes('Importing users'); i++) await new Promise((r) => setTimeout(r, 10));
      return res;
    },
  },
  { name: 'read audit log', needs: 'audit', writes: false, request: (b) => b.get('/admin/audit') },
  { name: 'list webhook endpoints', needs: 'webhooks', writes: false, request: (b) => b.get('/admin/webhooks') },
  { name: 'open add webhook endpoint', needs: 'webhooks', writes: false, request: (b) => b.get('/admin/webhooks/new') },
  { name: 'add a webhook endpoint', needs: 'webhooks', writes: true, request: (b) => b.postForm('/admin/webhooks/new', { url: 'https://hr.example.org/hooks', events: 'user.created' }) },
  { name: 'open a webhook endpoint', needs: 'webhooks', writes: false, request: (b, x) => b.get(`/admin/webhooks/${x.endpointId}`) },
  { name: 'change webhook events', needs: 'webhooks', writes: true, request: (b, x) => b.postForm(`/admin/webhooks/${x.endpointId}`, { events: 'role.changed' }) },
  { name: 'pause a webhook endpoint', needs: 'webhooks', writes: true, request: (b, x) => b.postForm(`/admin/webhooks/${x.endpointId}/pause`, {}) },
  { name: 'resume a webhook endpoint', needs: 'webhooks', writes: true, request: (b, x) => b.postForm(`/admin/webhooks/${x.pausedEndpointId}/resume`, {}) },
  { name: 'replace a webhook secret', needs: 'webhooks', writes: true, request: (b, x) => b.postForm(`/admin/webhooks/${x.endpointId}/rotate`, {}) },
  { name: 'send a webhook test event', needs: 'webhooks', writes: true, request: (b, x) => b.postForm(`/admin/webhooks/${x.endpointId}/test`, {}) },
  { name: 'open delete webhook endpoint', needs: 'webhooks', writes: false, request: (b, x) => b.get(`/admin/webhooks/${x.endpointId}/delete`) },
  { name: 'delete a webhook endpoint', needs: 'webhooks', writes: true, request: (b, x) => b.postForm(`/admin/webhooks/${x.endpointId}/delete`, { confirm: 'yes' }) },
  { name: 'open a webhook delivery', needs: 'webhooks', writes: false, request: (b, x) => b.get(`/admin/webhooks/${x.endpointId}/deliveries/${x.deliveryId}`) },
  { name: 'send a webhook delivery again', needs: 'webhooks', writes: true, request: (b, x) => b.postForm(`/admin/webhooks/${x.endpointId}/deliveries/${x.deliveryId}/retry`, {}) },
  { name: 'export audit CSV', needs: 'audit', writes: true, request: (b) => b.get('/admin/audit.csv') },
  { name: 'list API tokens', needs: 'tokens', writes: false, request: (b) => b.get('/admin/api-tokens') },
  { name: 'open create an API token', needs: 'tokens', writes: false, request: (b) => b.get('/admin/api-tokens/new') },
  { name: 'create an API token', needs: 'tokens', writes: true, request: (b) => b.postForm('/admin/api-tokens/new', { name: 'HR feed', role: 'ra_agent', days: '30' }) },
  { name: 'open the page of a created API token', needs: 'tokens', writes: false, request: (b, x) => b.get(`/admin/api-tokens/${x.apiTokenId}/created`) },
  { name: 'open revoke an API token', needs: 'tokens', writes: false, request: (b, x) => b.get(`/admin/api-tokens/${x.apiTokenId}/revoke`) },
  { name: 'revoke an API token', needs: 'tokens', writes: true, request: (b, x) => b.postForm(`/admin/api-tokens/${x.apiTokenId}/revoke`, {}) },
];

describe('roles × actions: allowed ones work, the others get 403 and change nothing', () => {
  let f: Fixture;
  const agents = new Map<string, { browser: TestBrowser; user: User }>();
  beforeAll(async () => {
    // Every refusal here is recorded: this test is not a flood.
    f = await fixture({ LATCHKEY_AUDIT_REFUSALS_PER_SOURCE_PER_MINUTE: '1000', LATCHKEY_AUDIT_REFUSALS_PER_MINUTE: '10000' });
    for (const [label, roles] of Object.entries(agentRoles)) agents.set(label, await f.agent(roles));
  });
  afterAll(async () => f.close());

  async function freshTarget(): Promise<Target> {
    const store = f.t.app.latchkey.store;
    // The endpoints an earlier target left would each get a delivery of every user.created from now on: hundreds of
    // endpoints, tens of thousands of deliveries, in every snapshot. Each test starts with only its own.
    await f.t.db.kysely.deleteFrom('webhook_endpoints').execute();
    const { user } = await f.person();
    const [passkey] = await store.authenticators.listForUser(user.id);
    const { flowId, token } = await issueInvite(store, f.t.config, user, f.clock.now, { method: 'link' });
    const templateId = `t${++counter}`;
    await store.emailTemplates.insert({ id: templateId, name: 'Spare', subject: 'Hello {{name}}', body: 'Open {{link}}', is_default: 0, created_at: f.clock.now, updated_at: f.clock.now, updated_by: null });
    const { service } = await addService(store, f.t.app.latchkey.secretBox, { name: 'Rota', redirectUris: ['https://rota.example.org/cb'], postLogoutRedirectUris: [], clientType: 'public', aal: 2, firstParty: false }, f.clock.now);
    const { record } = await createApiToken(store, { name: 'Spare token', role: 'auditor', createdBy: null }, f.clock.now);
    const endpoint = async (status: 'active' | 'paused') => {
      const id = `ep${++counter}`;
      await store.webhooks.insertEndpoint({ id, url: 'https://hr.example.org/hooks', description: '', events: '["user.created"]', secret: f.t.app.latchkey.secretBox.seal('whsec_dGVzdHRlc3R0ZXN0dGVzdHRlc3R0ZXN0', `webhook-secret:${id}`), created_by: null, created_at: f.clock.now });
      if (status === 'paused') await store.webhooks.pause(id, f.clock.now);
      return id;
    };
    const endpointId = await endpoint('active');
    const deliveryId = `msg_${++counter}`;
    await store.webhooks.insertDelivery({ id: deliveryId, endpoint_id: endpointId, event_type: 'webhook.test', payload: '{"type":"webhook.test"}', created_at: f.clock.now });
    await f.t.db.kysely.updateTable('webhook_deliveries').set({ status: 'failed', attempts: 8 }).where('id', '=', deliveryId).execute();
    const upload = { fileName: 'other.csv', text: `name,email\nOther Person,other-${++counter}@example.org\n` };
    const job = await checkImportFile({ store, config: f.t.config, secret: f.t.app.latchkey.secret, now: () => f.clock.now }, upload, { userId: user.id, canGrantRoles: false }, { sendEmail: false });
    return { user, authenticatorId: passkey!.id, flowId, token, templateId, clientId: service.client_id, apiTokenId: record.id, endpointId, pausedEndpointId: await endpoint('paused'), deliveryId, importId: job.id };
  }

  it('tries every route the console registered (a new route needs a line here)', async () => {
    const requested: string[] = [];
    const answer = { statusCode: 0, body: '' };
    const recorder = {
      get: async (url: string) => (requested.push(`GET ${url.split('?')[0]}`), answer),
      postForm: async (url: string) => (requested.push(`POST ${url}`), answer),
      postJson: async (url: string) => (requested.push(`POST ${url}`), answer),
      postMultipart: async (url: string) => (requested.push(`POST ${url}`), answer),
    } as unknown as TestBrowser;
    const x: Target = { user: { id: 'USER' } as User, authenticatorId: 'AUTH', flowId: 'FLOW', token: 'TOKEN', templateId: 'TEMPLATE', clientId: 'CLIENT', apiTokenId: 'APITOKEN', endpointId: 'ENDPOINT', pausedEndpointId: 'PAUSED', deliveryId: 'DELIVERY', importId: 'IMPORT' };
    for (const action of actions) await action.request(recorder, x);
    const routes = consoleRoutes(f.t.app);
    const untried = routes.filter((r) => {
      const pattern = new RegExp(`^${r.method} ${r.url.replace(/\./g, '\\.').replace(/:\w+/g, '[^/]+')}$`);
      return !requested.some((line) => pattern.test(line));
    });
    expect(untried.map((r) => `${r.method} ${r.url}`)).toEqual([]);
    // And each is tried with the permission the route declares.
    const needs: Record<Permission, string> = {
      console: ANY_ROLE,
      view: 'users.view',
      add: 'users.add',
      edit: 'users.edit',
      issue: 'authenticators.issue',
      remove: 'authenticators.remove',
      roles: 'roles.manage',
      templates: 'templates.manage',
      services: 'services.manage',
      policy: 'policy.manage',
      audit: 'audit.read',
      tokens: 'api_tokens.manage',
      webhooks: 'webhooks.manage',
    };
    for (const action of actions) {
      requested.length = 0;
      await action.request(recorder, x);
      const [method, url] = requested[0]!.split(' ');
      // As the router does: a static path (/admin/users/import) before a parametric one (/admin/users/:id).
      const route = routes
        .filter((r) => r.method === method && new RegExp(`^${r.url.replace(/\./g, '\\.').replace(/:\w+/g, '[^/]+')}$`).test(url!))
        .sort((a, b) => (a.url.match(/:/g)?.length ?? 0) - (b.url.match(/:/g)?.length ?? 0))[0];
      expect(route?.permission, action.name).toBe(needs[action.needs]);
    }
  });

  for (const label of Object.keys(agentRoles)) {
    for (const action of actions) {
      const allowed = allowedFor[label]!.includes(action.needs);
      it(`${label} ${allowed ? 'can' : 'cannot'} ${action.name}`, async () => {
        const target = await freshTarget();
        const before = await snapshot(f.t);
        const agent = agents.get(label)!;
        const refusalBefore = await lastRefusal(f.t, agent.user.id);
        const res = await action.request(agent.browser, target);
        if (allowed) {
          expect(res.statusCode, res.body.slice(0, 300)).toBeLessThan(400);
          if (action.writes) expect(await snapshot(f.t)).not.toBe(before);
          expect(await lastRefusal(f.t, agent.user.id)).toEqual(refusalBefore);
        } else {
          expect(res.statusCode, res.body.slice(0, 300)).toBe(403);
          expect(await snapshot(f.t)).toBe(before);
          // …and the refusal is on record: who, what, why, from where.
          const refusal = await lastRefusal(f.t, agent.user.id);
          expect(refusal?.id).not.toBe(refusalBefore?.id);
          expect(refusal).toMatchObject({ event: 'console.refused', outcome: 'refused', ip: '127.0.0.1' });
          expect(refusal!.detail).toMatchObject({ reason: agentRoles[label]!.length ? 'forbidden' : 'no_console_role' });
          expect(refusal!.detail.action).toMatch(/^(GET|POST) \/admin/);
        }
      });
    }
  }

  it('a visitor who is not signed in is sent to sign in (pages) or gets 401 (JSON), and nothing changes', async () => {
    const target = await freshTarget();
    const browser = new TestBrowser(f.t.app);
    const page = await browser.get(`/admin/users/${target.user.id}`);
    expect(page.statusCode).toBe(302);
    expect(page.headers.location).toBe(`/signin?next=${encodeURIComponent(`/admin/users/${target.user.id}`)}`);
    await browser.get('/signin');
    const before = await snapshot(f.t);
    const post = await browser.postJson(`/admin/users/${target.user.id}/enrolments`, { method: 'link' });
    expect(post.statusCode).toBe(401);
    expect(await snapshot(f.t)).toBe(before);
  });
});

describe('the registration-authority console', () => {
  let f: Fixture;
  beforeEach(async () => {
    f = await fixture();
    sink.clear();
  });
  afterEach(async () => f.close());

  const store = () => f.t.app.latchkey.store;

  /** Register a passkey through an enrolment link in a fresh browser; returns the verify answer. */
  async function registerThrough(browser: TestBrowser, path: string, auth = authenticator()) {
    const page = await browser.get(path);
    if (page.statusCode !== 200) return page;
    const opts = await browser.postJson(`${path}/options`, { name: 'Work phone', placement: 'another-device' });
    if (opts.statusCode !== 200) return opts;
    return browser.postJson(`${path}/verify`, { response: auth.createCredential(opts.json().options), name: 'Work phone' });
  }

  /** Issue as the console's form does: a 303 to the page of what was issued, which the browser then loads. */
  async function issueAs(browser: TestBrowser, userId: string, body: Record<string, string>) {
    const post = await browser.postForm(`/admin/users/${userId}/enrolments`, body);
    expect(post.statusCode, post.body.slice(0, 300)).toBe(303);
    const location = post.headers.location as string;
    expect(location).toMatch(new RegExp(`^/admin/users/${userId}/enrolments/[A-Za-z0-9_-]+$`));
    return { location, page: await browser.get(location) };
  }

  async function pendingUser(email = 'mary@example.org', name = 'Mary Seacole') {
    return createUser(store(), { email, displayName: name }, f.clock.now);
  }

  it('agents never act on their own account', async () => {
    const { browser, user } = await f.agent(['ra_manager']);
    const [passkey] = await store().authenticators.listForUser(user.id);
    const before = await snapshot(f.t);
    for (const res of [
      await browser.postForm(`/admin/users/${user.id}/enrolments`, { method: 'link' }),
      await browser.postForm(`/admin/users/${user.id}/authenticators/${passkey!.id}/remove`, { confirm: 'yes' }),
      await browser.postForm(`/admin/users/${user.id}/roles`, {}),
      await browser.postForm(`/admin/users/${user.id}/status`, { action: 'suspend' }),
    ]) {
      expect(res.statusCode).toBe(403);
      expect(res.body).toContain('You cannot change your own account');
    }
    expect(await snapshot(f.t)).toBe(before);
    const tab = await browser.get(`/admin/users/${user.id}/authenticators`);
    expect(tab.body).not.toContain('Issue other authenticator');
    // One line says why there is nothing to press, and where to go instead.
    expect(tab.body).toContain('You can’t change your own authenticators here. Use your <a href="/settings">Login and security settings</a>, or ask another agent.');
    const other = await f.person('someone.else@example.org');
    expect((await browser.get(`/admin/users/${other.user.id}/authenticators`)).body).not.toContain('your own authenticators');
  });

  it('finds users by name, email or id prefix, filters by status, and adds a user with a hashed national identifier', async () => {
    const { browser } = await f.agent(['ra_agent_advanced']);
    const mary = await pendingUser();
    const found = await browser.get('/admin/users?q=MAR');
    expect(found.body).toContain('Mary Seacole');
    expect(found.body).toContain(`/admin/users/${mary.id}`);
    expect((await browser.get('/admin/users?q=mary%40exa')).body).toContain('Mary Seacole');
    expect((await browser.get(`/admin/users?q=${mary.id}`)).body).toContain('Mary Seacole');
    expect((await browser.get('/admin/users?q=seacole')).body).toContain('No users found');
    expect((await browser.get('/admin/users?status=enrolled&q=mar')).body).toContain('No users found');
    expect((await browser.get('/admin/users?status=pending&q=mar')).body).toContain('Mary Seacole');
    expect((await browser.get('/admin/users?status=bogus')).statusCode).toBe(400);

    const bad = await browser.postForm('/admin/users/new', { name: '', email: 'not-an-email', nationalId: 'XX' });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('There is a problem');
    expect(bad.body).toContain('Enter the person’s full name');
    expect(bad.body).toContain('Enter an email address in the correct format');
    expect(bad.body).toContain('National Insurance number in the correct format');
    const duplicate = await browser.postForm('/admin/users/new', { name: 'Mary Again', email: 'MARY@example.org' });
    expect(duplicate.statusCode).toBe(400);
    expect(duplicate.body).toContain('A user with this email address already exists');

    const added = await browser.postForm('/admin/users/new', { name: 'Florence Nightingale', email: 'florence@example.org', nationalId: 'ab 12 34 56 c' });
    expect(added.statusCode).toBe(303);
    const florence = (await store().users.findByEmail('florence@example.org'))!;
    expect(florence.status).toBe('pending');
    expect(florence.national_id_hash).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(JSON.stringify(await snapshot(f.t))).not.toContain('AB123456C');
    const details = await browser.get(added.headers.location as string);
    expect(details.body).toContain('Florence Nightingale has been added');
    expect(details.body).toContain('Recorded (it cannot be shown)');
    expect(details.body).not.toContain('AB123456C');
  });

  it('issues a link: the page shows it, the person registers, the status reads Enrolled and the passkey names its issuer', async () => {
    const { browser, user: agent } = await f.agent(['ra_agent_advanced']);
    const mary = await pendingUser();
    const { page } = await issueAs(browser, mary.id, { method: 'link' });
    expect(page.statusCode).toBe(200);
    const link = /value="(http:\/\/localhost:3000\/enrol\/[A-Za-z0-9_-]{43})"/.exec(page.body)![1]!;
    const flowId = /\/admin\/enrolments\/([A-Za-z0-9_-]+)\/status/.exec(page.body)![1]!;
    const status = async () => (await browser.get(`/admin/enrolments/${flowId}/status`, 'application/json')).json().status;
    expect(await status()).toBe('pending');
    // The link lasts 30 minutes by default.
    expect((await store().flows.findById(flowId))!.expires_at).toBe(f.clock.now + 30 * 60_000);

    const person = new TestBrowser(f.t.app);
    const enrolPage = await person.get(new URL(link).pathname);
    expect(enrolPage.body).toContain('St Elsewhere NHS Trust');
    expect(enrolPage.body).toContain('Mary Seacole');
    const done = await registerThrough(person, new URL(link).pathname);
    expect(done.json()).toEqual({ status: 'ok', redirect: '/enrol/done' });
    expect((await person.get('/enrol/done')).body).toContain('Your passkey is set up');
    expect(await status()).toBe('enrolled');
    expect((await store().users.findById(mary.id))!.status).toBe('enrolled');
    const [passkey] = await store().authenticators.listForUser(mary.id);
    expect(passkey!.issued_by).toBe(agent.id);
    const tab = await browser.get(`/admin/users/${mary.id}/authenticators`);
    expect(tab.body).toContain(agent.display_name);
    expect(tab.body).toContain('data-enrolment-status="enrolled"');
    const activity = await browser.get(`/admin/users/${mary.id}/activity`);
    for (const text of ['Enrolment link generated', 'Passkey set up from invite link']) expect(activity.body).toContain(text);
    // Told by email, as for every authenticator added.
    const notice = await sink.waitFor((m) => m.to.includes('mary@example.org'));
    expect(notice.subject).toBe('An authenticator was added to your St Elsewhere NHS Trust profile');
    expect(notice.text).toContain('A passkey was added to your St Elsewhere NHS Trust profile at');
    expect(notice.text).toContain('It is named "Work phone". It was set up with an enrolment link from your registration authority.');
  });

  it('a passkey set up with a link from the command line is emailed about too', async () => {
    const mary = await pendingUser();
    const { url } = await issueInvite(store(), f.t.config, mary, f.clock.now, { method: 'cli' });
    expect((await registerThrough(new TestBrowser(f.t.app), new URL(url).pathname)).json().redirect).toBe('/enrol/done');
    const notice = await sink.waitFor((m) => m.to.includes('mary@example.org'));
    expect(notice.subject).toBe('An authenticator was added to your St Elsewhere NHS Trust profile');
    expect(notice.text).toContain('It was set up with an enrolment link from your administrator.');
  });

  it('revoking a link makes it "no longer valid"; a new link revokes the earlier one', async () => {
    const { browser } = await f.agent(['ra_agent_advanced']);
    const mary = await pendingUser();
    const { page: first } = await issueAs(browser, mary.id, { method: 'link' });
    const firstPath = new URL(/value="(http[^"]+\/enrol\/[^"]+)"/.exec(first.body)![1]!).pathname;
    const { page: second } = await issueAs(browser, mary.id, { method: 'link' });
    const secondPath = new URL(/value="(http[^"]+\/enrol\/[^"]+)"/.exec(second.body)![1]!).pathname;
    const secondFlow = /\/admin\/enrolments\/([A-Za-z0-9_-]+)\/status/.exec(second.body)![1]!;
    const person = new TestBrowser(f.t.app);
    const old = await person.get(firstPath);
    expect(old.statusCode).toBe(410);
    expect(old.body).toContain('no longer valid');
    const revoke = await browser.postForm(`/admin/users/${mary.id}/enrolments/${secondFlow}/revoke`, {});
    expect(revoke.statusCode).toBe(303);
    expect((await browser.get(revoke.headers.location as string)).body).toContain('The link or code has been revoked');
    expect((await person.get(secondPath)).statusCode).toBe(410);
    expect((await browser.get(`/admin/enrolments/${secondFlow}/status`, 'application/json')).json().status).toBe('revoked');
  });

  it('issuing answers with a redirect: reloading the page issues nothing, and shows the link or code only once', async () => {
    const { browser } = await f.agent(['ra_agent_advanced']);
    const { browser: otherAgent } = await f.agent(['ra_agent_advanced']);
    const mary = await pendingUser();
    const { location, page } = await issueAs(browser, mary.id, { method: 'link' });
    const link = /value="(http:\/\/localhost:3000\/enrol\/[A-Za-z0-9_-]{43})"/.exec(page.body)![1]!;
    const token = link.slice(link.lastIndexOf('/') + 1);
    // The server keeps it sealed until it is shown, never in the clear.
    expect(await snapshot(f.t)).not.toContain(token);
    for (const again of [await browser.get(location), await otherAgent.get(location)]) {
      expect(again.statusCode).toBe(200);
      expect(again.body).toContain('Link generated');
      expect(again.body).toContain('The link was shown once, to the agent who generated it, and is not shown again.');
      expect(again.body).not.toContain(token);
      expect(again.body).toContain('data-enrolment-status="pending"');
    }
    // Nothing new issued, nothing revoked: the link already given out still works.
    const flows = await store().flows.listForUser(mary.id, ['invite', 'enrol-code']);
    expect(flows.map((fl) => fl.state)).toEqual(['active']);
    expect((await store().audit.listByEvent('enrolment.link_issued')).length).toBe(1);
    expect((await new TestBrowser(f.t.app).get(new URL(link).pathname)).statusCode).toBe(200);

    // A code, the same way; it still works after the page was reloaded. Another agent opening the page first
    // neither sees it nor uses up its one showing.
    const codePost = await browser.postForm(`/admin/users/${mary.id}/enrolments`, { method: 'code' });
    expect(codePost.statusCode).toBe(303);
    const codePage = codePost.headers.location as string;
    expect((await otherAgent.get(codePage)).body).not.toContain('id="enrolment-code"');
    const code = /id="enrolment-code"><span aria-hidden="true">([0-9A-Z-]{11})</.exec((await browser.get(codePage)).body)![1]!;
    const reloaded = await browser.get(codePage);
    expect(reloaded.body).toContain('The code was shown once, to the agent who generated it, and is not shown again.');
    expect(reloaded.body).not.toContain(code);
    expect(reloaded.body).not.toContain('id="enrolment-code"');
    expect((await store().audit.listByEvent('enrolment.code_issued')).length).toBe(1);
    const person = new TestBrowser(f.t.app);
    await person.get('/enrol');
    expect((await person.postForm('/enrol', { email: 'mary@example.org', code })).statusCode).toBe(303);

    // An enrolment email: the page says it was sent however often it is loaded, and one email went.
    sink.clear();
    const emailed = await issueAs(browser, mary.id, { method: 'email' });
    for (const again of [emailed.page, await browser.get(emailed.location)]) {
      expect(again.body).toContain('Enrolment email sent');
      expect(again.body).toContain('An enrolment email with a single-use link was sent to mary@example.org');
      expect(again.body).not.toContain('was shown once');
    }
    await sink.waitFor((m) => m.to.includes('mary@example.org'));
    expect(sink.messages).toHaveLength(1);
    expect((await store().audit.listByEvent('enrolment.emailed')).length).toBe(1);
  });

  it('issuing is one write: when it fails after revoking the earlier link, that link still works and nothing is half-issued', async () => {
    const { browser } = await f.agent(['ra_agent_advanced']);
    const mary = await pendingUser();
    const { page } = await issueAs(browser, mary.id, { method: 'link' });
    const firstPath = new URL(/value="(http[^"]+\/enrol\/[^"]+)"/.exec(page.body)![1]!).pathname;
    const before = await store().flows.listForUser(mary.id, ['invite', 'enrol-code']);
    // The audit record is the issue's last write, after the earlier link's revocation and the new flow's insert.
    const record = AuditPersister.prototype.record;
    const failing = vi.spyOn(AuditPersister.prototype, 'record').mockImplementation(async function (this: AuditPersister, r) {
      if (r.event === 'enrolment.link_issued' || r.event === 'enrolment.code_issued') throw new Error('disk full');
      return record.call(this, r);
    });
    try {
      for (const method of ['link', 'code']) {
        const res = await browser.postForm(`/admin/users/${mary.id}/enrolments`, { method });
        expect(res.statusCode, method).toBe(500);
      }
    } finally {
      failing.mockRestore();
    }
    expect(await store().flows.listForUser(mary.id, ['invite', 'enrol-code'])).toEqual(before);
    expect((await new TestBrowser(f.t.app).get(firstPath)).statusCode).toBe(200);
    expect((await store().audit.listByEvent('enrolment.link_issued')).length).toBe(1);
    expect((await store().audit.listByEvent('enrolment.code_issued')).length).toBe(0);
  });

  it('issues a 9-character code that works with the right email within 60 seconds, once', async () => {
    const { browser } = await f.agent(['ra_manager']);
    const mary = await pendingUser();
    const { page } = await issueAs(browser, mary.id, { method: 'code' });
    const shown = /id="enrolment-code"><span aria-hidden="true">([0-9A-Z-]{11})</.exec(page.body)![1]!;
    expect(shown).toMatch(/^[0-9ABCDEFGHJKMNPQRSTVWXYZ]{3}-[0-9ABCDEFGHJKMNPQRSTVWXYZ]{3}-[0-9ABCDEFGHJKMNPQRSTVWXYZ]{3}$/);
    const flowId = /\/admin\/enrolments\/([A-Za-z0-9_-]+)\/status/.exec(page.body)![1]!;
    expect(JSON.stringify(await store().flows.findById(flowId))).not.toContain(shown.replace(/-/g, ''));

    const person = new TestBrowser(f.t.app);
    await person.get('/enrol');
    // Lower case, spaces instead of dashes: Crockford codes are read out loud.
    const redeemed = await person.postForm('/enrol', { email: ' MARY@example.org ', code: shown.toLowerCase().replace(/-/g, ' ') });
    expect(redeemed.statusCode).toBe(303);
    const path = redeemed.headers.location as string;
    expect(path).toMatch(/^\/enrol\/[A-Za-z0-9_-]{43}$/);
    // The link a code opens works only in the browser that redeemed it.
    expect((await new TestBrowser(f.t.app).get(path)).statusCode).toBe(404);
    expect((await browser.get(`/admin/enrolments/${flowId}/status`, 'application/json')).json().status).toBe('pending');
    expect((await registerThrough(person, path)).json().redirect).toBe('/enrol/done');
    expect((await browser.get(`/admin/enrolments/${flowId}/status`, 'application/json')).json().status).toBe('enrolled');
    expect((await store().users.findById(mary.id))!.status).toBe('enrolled');
    const notice = await sink.waitFor((m) => m.to.includes('mary@example.org'));
    expect(notice.text).toContain('It is named "Work phone". It was set up with a 9-character code from your registration authority.');

    const late = new TestBrowser(f.t.app);
    await late.get('/enrol');
    const again = await late.postForm('/enrol', { email: 'mary@example.org', code: shown });
    expect(again.statusCode).toBe(410);
    expect(again.body).toContain('This code has already been used');
  });

  it('a code expires 60 seconds after issue; the page says so and the agent sees Expired', async () => {
    const { browser } = await f.agent(['ra_agent_advanced']);
    const mary = await pendingUser();
    const { page } = await issueAs(browser, mary.id, { method: 'code' });
    const code = /id="enrolment-code"><span aria-hidden="true">([0-9A-Z-]{11})</.exec(page.body)![1]!;
    const flowId = /\/admin\/enrolments\/([A-Za-z0-9_-]+)\/status/.exec(page.body)![1]!;
    f.clock.now += 60_000;
    const person = new TestBrowser(f.t.app);
    await person.get('/enrol');
    const late = await person.postForm('/enrol', { email: 'mary@example.org', code });
    expect(late.statusCode).toBe(410);
    expect(late.body).toContain('This code has expired');
    expect(late.body).toContain('Ask your agent for a new code');
    expect((await browser.get(`/admin/enrolments/${flowId}/status`, 'application/json')).json().status).toBe('expired');
  });

  it('an unknown email gets the same answer as a wrong code; 5 wrong tries burn the code', async () => {
    const { browser } = await f.agent(['ra_agent_advanced']);
    const mary = await pendingUser();
    const { page } = await issueAs(browser, mary.id, { method: 'code' });
    const code = /id="enrolment-code"><span aria-hidden="true">([0-9A-Z-]{11})</.exec(page.body)![1]!;
    const person = new TestBrowser(f.t.app);
    await person.get('/enrol');
    const wrongCode = code.startsWith('0') ? '1' + code.slice(1) : '0' + code.slice(1);
    const answer = async (email: string, c: string) => {
      const res = await person.postForm('/enrol', { email, code: c });
      // The error summary and the field's message: everything the page says about what went wrong.
      const message = [...res.body.matchAll(/<div class="error-summary"[\s\S]*?<\/div>|<p class="error-message"[\s\S]*?<\/p>/g)].map((m) => m[0]).join('');
      return { status: res.statusCode, message };
    };
    const unknown = await answer('nobody@example.org', code);
    const wrong = await answer('mary@example.org', wrongCode);
    expect(unknown).toEqual(wrong);
    expect(wrong.status).toBe(400);
    expect(wrong.message).toContain('The email address or the code is not right');
    for (let i = 1; i < CODE_MAX_ATTEMPTS; i++) expect((await answer('mary@example.org', wrongCode)).status).toBe(400);
    // Five wrong tries: the right code no longer works.
    const burned = await person.postForm('/enrol', { email: 'mary@example.org', code });
    expect(burned.statusCode).toBe(410);
    expect(burned.body).toContain('no longer valid');
    expect(await store().authenticators.countForUser(mary.id)).toBe(0);
  });

  it('50 concurrent redemptions of one code: exactly one opens a link, and one passkey is stored', async () => {
    const { browser } = await f.agent(['ra_agent_advanced']);
    const mary = await pendingUser();
    const { page } = await issueAs(browser, mary.id, { method: 'code' });
    const code = /id="enrolment-code"><span aria-hidden="true">([0-9A-Z-]{11})</.exec(page.body)![1]!;
    const people = await Promise.all(Array.from({ length: 50 }, async () => {
      const b = new TestBrowser(f.t.app);
      await b.get('/enrol');
      return b;
    }));
    const answers = await Promise.all(people.map((b) => b.postForm('/enrol', { email: 'mary@example.org', code })));
    const winners = answers.filter((a) => a.statusCode === 303);
    expect(winners).toHaveLength(1);
    expect(answers.filter((a) => a.statusCode !== 303).every((a) => a.statusCode === 410 && a.body.includes('already been used'))).toBe(true);
    const winner = people[answers.indexOf(winners[0]!)]!;
    await registerThrough(winner, winners[0]!.headers.location as string);
    expect(await store().authenticators.countForUser(mary.id)).toBe(1);
  });

  it('50 concurrent registrations through one link: exactly one passkey is stored', async () => {
    const mary = await pendingUser();
    const { url } = await issueInvite(store(), f.t.config, mary, f.clock.now, { lifetimeSeconds: 1800 });
    const path = new URL(url).pathname;
    const ready = await Promise.all(Array.from({ length: 50 }, async () => {
      const b = new TestBrowser(f.t.app);
      await b.get(path);
      const opts = await b.postJson(`${path}/options`, { name: 'Phone', placement: 'this-device' });
      return { b, response: authenticator().createCredential(opts.json().options) };
    }));
    const answers = await Promise.all(ready.map(({ b, response }) => b.postJson(`${path}/verify`, { response })));
    expect(answers.filter((a) => a.statusCode === 200)).toHaveLength(1);
    expect(answers.every((a) => a.statusCode < 500)).toBe(true);
    expect(await store().authenticators.countForUser(mary.id)).toBe(1);
  });

  it('sends the enrolment email through SMTP from the chosen template, with the link that works', async () => {
    const { browser } = await f.agent(['ra_manager']);
    const mary = await pendingUser();
    const made = await browser.postForm('/admin/templates/new', {
      name: 'Ward staff',
      subject: '{{organisation}}: your passkey, {{name}}',
      body: 'Dear {{name}},\n\nUse {{link}} before {{expiry}}.\n\n{{organisation}}',
      action: 'save',
    });
    expect(made.statusCode).toBe(303);
    const template = (await store().emailTemplates.list()).find((t) => t.name === 'Ward staff')!;
    const { page: sent } = await issueAs(browser, mary.id, { method: 'email', template: template.id });
    expect(sent.statusCode).toBe(200);
    expect(sent.body).toContain('An enrolment email with a single-use link was sent to mary@example.org');
    const mail = await sink.waitFor((m) => m.to.includes('mary@example.org'));
    expect(mail.subject).toBe('St Elsewhere NHS Trust: your passkey, Mary Seacole');
    const link = /http:\/\/localhost:3000\/enrol\/[A-Za-z0-9_-]{43}/.exec(mail.text)![0];
    expect(mail.text).toContain('Dear Mary Seacole');
    expect(mail.text).not.toContain('{{');
    expect((await registerThrough(new TestBrowser(f.t.app), new URL(link).pathname)).json().redirect).toBe('/enrol/done');
    const notice = await sink.waitFor((m) => m.to.includes('mary@example.org') && m !== mail);
    expect(notice.subject).toBe('An authenticator was added to your St Elsewhere NHS Trust profile');
    expect(notice.text).toContain('It was set up with the enrolment email your registration authority sent you.');
  });

  it('"send by email" beside a generated link sends that link; a forged token is refused', async () => {
    const { browser } = await f.agent(['ra_agent_advanced']);
    const mary = await pendingUser();
    const { page } = await issueAs(browser, mary.id, { method: 'link' });
    const token = /name="token" value="([^"]+)"/.exec(page.body)![1]!;
    const flowId = /\/admin\/enrolments\/([A-Za-z0-9_-]+)\/status/.exec(page.body)![1]!;
    const forged = await browser.postForm(`/admin/users/${mary.id}/enrolments/${flowId}/email`, { token: 'A'.repeat(43) });
    expect(forged.statusCode).toBe(404);
    const ok = await browser.postForm(`/admin/users/${mary.id}/enrolments/${flowId}/email`, { token });
    expect(ok.statusCode).toBe(303);
    expect(ok.headers.location).toBe(`/admin/users/${mary.id}/enrolments/${flowId}?done=emailed`);
    const sentPage = await browser.get(ok.headers.location as string);
    expect(sentPage.body).toContain('An enrolment email with a single-use link was sent to mary@example.org');
    expect(sentPage.body).not.toContain(token);
    const mail = await sink.waitFor((m) => m.to.includes('mary@example.org'));
    expect(mail.text).toContain(`/enrol/${token}`);
  });

  it('when the mail server is down the agent is told, and the link that was not sent is revoked', async () => {
    await f.close();
    f = await fixture({ LATCHKEY_SMTP_URL: 'smtp://127.0.0.1:9' });
    const { browser } = await f.agent(['ra_agent_advanced']);
    const mary = await pendingUser();
    const res = await browser.postForm(`/admin/users/${mary.id}/enrolments`, { method: 'email' });
    expect(res.statusCode).toBe(503);
    expect(res.body).toContain('The email could not be sent');
    const flows = await store().flows.listForUser(mary.id, ['invite']);
    expect(flows.map((fl) => fl.state)).toEqual(['revoked']);
  });

  it('removing an authenticator needs the tick, ends the sessions signed in with it, emails the person, and is audited', async () => {
    const { browser } = await f.agent(['ra_agent_advanced']);
    const { user, browser: personBrowser } = await f.person('grace@example.org');
    const [passkey] = await store().authenticators.listForUser(user.id);
    expect((await personBrowser.get('/settings')).statusCode).toBe(200);

    const confirm = await browser.get(`/admin/users/${user.id}/authenticators/${passkey!.id}/remove`);
    expect(confirm.body).toContain('I confirm I want to remove this passkey');
    // One sentence, not broken around the provider's name.
    expect(confirm.body).toMatch(/You are removing <strong>[^<]+<\/strong>, a passkey(?: saved (?:in|on) [^<]+)?, created [^<]+ UTC, from [^<]+’s profile\./);
    const unticked = await browser.postForm(`/admin/users/${user.id}/authenticators/${passkey!.id}/remove`, {});
    expect(unticked.statusCode).toBe(400);
    expectConfirmError(unticked.body, 'Select the box to confirm you want to remove the passkey');
    expect(await store().authenticators.countForUser(user.id)).toBe(1);

    const removed = await browser.postForm(`/admin/users/${user.id}/authenticators/${passkey!.id}/remove`, { confirm: 'yes' });
    expect(removed.statusCode).toBe(303);
    expect((await browser.get(removed.headers.location as string)).body).toContain(`The passkey has been removed from ${user.display_name}’s profile.`);
    expect(await store().authenticators.countForUser(user.id)).toBe(0);
    expect((await store().users.findById(user.id))!.status).toBe('pending');
    const after = await personBrowser.get('/settings');
    expect(after.statusCode).toBe(302);
    expect(after.headers.location).toBe('/signin');
    const mail = await sink.waitFor((m) => m.to.includes('grace@example.org'));
    expect(mail.subject).toContain('A passkey was removed');
    const events = await store().audit.listByEvent('authenticator.removed');
    expect(events).toHaveLength(1);
    expect(events[0]!.subject_user_id).toBe(user.id);

    const twice = await browser.postForm(`/admin/users/${user.id}/authenticators/${passkey!.id}/remove`, { confirm: 'yes' });
    expect(twice.statusCode).toBe(404);
  });

  it('templates: placeholders are checked, the preview fills them in, and the default cannot be deleted', async () => {
    const { browser } = await f.agent(['ra_manager']);
    const bad = await browser.postForm('/admin/templates/new', { name: 'X', subject: 'Hi {{nmae}}', body: 'No link here', action: 'save' });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('unknown placeholder: {{nmae}}');
    expect(bad.body).toContain('must include {{link}}');
    const preview = await browser.postForm('/admin/templates/new', { name: 'X', subject: 'Hi {{name}}', body: 'Go to {{link}} ({{organisation}})', action: 'preview' });
    expect(preview.statusCode).toBe(200);
    expect(preview.body).toContain('Hi Ada Lovelace');
    expect(preview.body).toContain('(St Elsewhere NHS Trust)');
    expect((await store().emailTemplates.list()).map((t) => t.name)).toEqual(['Default']);
    const refused = await browser.postForm('/admin/templates/default/delete', {});
    expect(refused.statusCode).toBe(409);
    expect(await store().emailTemplates.findDefault()).toBeDefined();
    await browser.postForm('/admin/templates/new', { name: 'Other', subject: 'S', body: '{{link}}', action: 'save' });
    const other = (await store().emailTemplates.list()).find((t) => t.name === 'Other')!;
    expect((await browser.postForm(`/admin/templates/${other.id}/delete`, {})).statusCode).toBe(303);
    expect(await store().emailTemplates.findById(other.id)).toBeUndefined();
  });

  it('the audit log filters, and exports CSV that spreadsheets cannot execute', async () => {
    const { browser } = await f.agent(['auditor']);
    const { browser: manager } = await f.agent(['ra_manager']);
    const mary = await pendingUser('=cmd@example.org', '=HYPERLINK("http://evil")');
    await manager.postForm(`/admin/users/${mary.id}/enrolments`, { method: 'link' });
    const log = await browser.get('/admin/audit?event=enrolment.link_issued');
    expect(log.statusCode).toBe(200);
    expect(log.body).toContain('Enrolment link generated');
    expect((await browser.get('/admin/audit?from=yesterday')).statusCode).toBe(400);
    const csv = await browser.get('/admin/audit.csv?event=enrolment.link_issued');
    expect(csv.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(csv.headers['content-disposition']).toMatch(/^attachment; filename="latchkey-audit-\d{4}-\d{2}-\d{2}\.csv"$/);
    const lines = csv.body.trim().split('\r\n');
    expect(lines[0]).toBe('time,event,outcome,actor_email,actor_name,actor_token_id,actor_token_name,subject_email,subject_name,authenticator_id,ip,user_agent,detail');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toContain(`"'=HYPERLINK(""http://evil"")"`);
    expect(lines[1]).toContain(`'=cmd@example.org`);
    expect(csvCell('+1')).toBe("'+1");
    expect(csvCell('a,b')).toBe('"a,b"');
  });

  it('managers grant and revoke roles; an unknown role is refused', async () => {
    const { browser } = await f.agent(['ra_manager']);
    const { user, browser: other } = await f.person();
    expect((await other.get('/admin')).statusCode).toBe(403);
    expect((await browser.postForm(`/admin/users/${user.id}/roles`, { roles: 'ra_agent' })).statusCode).toBe(303);
    expect(await store().roles.listForUser(user.id)).toEqual(['ra_agent']);
    expect((await other.get('/admin')).statusCode).toBe(200);
    expect((await browser.postForm(`/admin/users/${user.id}/roles`, { roles: 'superuser' })).statusCode).toBe(400);
    expect((await browser.postForm(`/admin/users/${user.id}/roles`, {})).statusCode).toBe(303);
    expect(await store().roles.listForUser(user.id)).toEqual([]);
    const events = await store().audit.listByEvent('roles.changed');
    expect(events.map((e) => JSON.parse(e.detail))).toEqual([{ added: [], removed: ['ra_agent'] }, { added: ['ra_agent'], removed: [] }]);
  });

  it('suspending signs the person out and stops sign-in; reactivating restores their status', async () => {
    const { browser } = await f.agent(['ra_agent_advanced']);
    const { user, browser: personBrowser } = await f.person();
    expect((await browser.postForm(`/admin/users/${user.id}/status`, { action: 'suspend' })).statusCode).toBe(303);
    expect((await personBrowser.get('/settings')).statusCode).toBe(302);
    expect((await browser.get('/admin/users?status=suspended')).body).toContain(user.display_name);
    expect((await browser.postForm(`/admin/users/${user.id}/status`, { action: 'reactivate' })).statusCode).toBe(303);
    expect((await store().users.findById(user.id))!.status).toBe('enrolled');
  });

  it('an agent clears a locked account’s failed sign-ins', async () => {
    const { browser } = await f.agent(['ra_agent_advanced']);
    const { user } = await f.person();
    await f.t.db.kysely.updateTable('users').set({ failed_signins: 100, last_failed_signin_at: f.clock.now }).where('id', '=', user.id).execute();
    expect((await browser.get(`/admin/users/${user.id}`)).body).toContain('Sign-in is locked after 100 failed attempts');
    const res = await browser.postForm(`/admin/users/${user.id}/status`, { action: 'unlock' });
    expect(res.statusCode).toBe(303);
    expect((await store().users.findById(user.id))!.failed_signins).toBe(0);
    expect((await store().audit.listByEvent('user.unlocked')).map((e) => e.subject_user_id)).toEqual([user.id]);
  });

  it('registers a service in the console (secret shown once), lists it for people by the level it needs, and removes it', async () => {
    const { browser } = await f.agent(['ra_manager']);
    const bad = await browser.postForm('/admin/services', { name: '', redirectUris: 'http://evil.example/cb', clientType: 'x', aal: '7' });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('Enter the service’s name');
    expect(bad.body).toContain('Choose the assurance level');
    const insecure = await browser.postForm('/admin/services', { name: 'Rota', redirectUris: 'http://rota.example.org/cb', clientType: 'confidential', aal: '2' });
    expect(insecure.statusCode).toBe(400);
    expect(insecure.body).toContain('https://');
    const made = await browser.postForm('/admin/services', { name: 'Rota', redirectUris: 'https://rota.example.org/cb\nhttps://rota.example.org/cb2', clientType: 'confidential', aal: '2' });
    expect(made.statusCode).toBe(201);
    const secret = /data-client-secret[^>]*>([A-Za-z0-9_-]+)</.exec(made.body)![1]!;
    const [service] = await store().services.list();
    expect(JSON.parse(service!.redirect_uris)).toEqual(['https://rota.example.org/cb', 'https://rota.example.org/cb2']);
    expect(service!.client_secret).not.toContain(secret);
    expect((await browser.get('/admin/services')).body).not.toContain(secret);
    expect(service!.id_token_alg).toBe('ES256');
    expect((await browser.postForm('/admin/services', { name: 'Old', redirectUris: 'https://old.example.org/cb', clientType: 'public', aal: '2', idTokenAlg: 'HS256' })).body).toContain('Choose how the service’s ID tokens are signed');
    await browser.postForm('/admin/services', { name: 'Payroll', redirectUris: 'https://pay.example.org/cb', clientType: 'public', aal: '3', idTokenAlg: 'RS256' });
    expect((await store().services.list()).find((s) => s.name === 'Payroll')!.id_token_alg).toBe('RS256');

    // A person with a synced passkey reaches AAL2, not AAL3.
    const { browser: person } = await f.person();
    const page = await person.get('/services');
    expect(page.body).toMatch(/data-service="[^"]+" data-usable="yes"><td[^>]*>Rota<\/td>/);
    expect(page.body).toMatch(/data-usable="no"><td[^>]*>Payroll<\/td>[\s\S]*?ask your registration authority for a security key/);

    const removed = await browser.postForm(`/admin/services/${service!.client_id}/remove`, {});
    expect(removed.statusCode).toBe(303);
    expect((await store().services.list()).map((s) => s.name)).toEqual(['Payroll']);
  });

  it('formats codes in three groups of three', () => {
    expect(formatCode('ABCDEFGHJ')).toBe('ABC-DEF-GHJ');
  });
});
