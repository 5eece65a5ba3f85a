/**
 * The events table against the real flows: an endpoint subscribed to everything sees, through the console and the
 * enrolment pages, exactly the webhook events each change is (one per change, none for a link emailed again), with
 * the person and the authenticator named and no link, code or secret in any payload.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticator, createTestApp, signUp, TestBrowser, type TestApp } from '../../test/support/app.js';
import type { User } from '../db/schema.js';
import { WEBHOOK_EVENT_TYPES } from './events.js';
import { webhookSecretContext } from './deliverWebhooks.js';

let t: TestApp;
let manager: TestBrowser;
const clock = { now: Date.UTC(2026, 11, 3, 9) };

beforeAll(async () => {
  t = await createTestApp({}, { now: () => clock.now });
  manager = await signUp(t.app, authenticator(), 'mona@example.org', 'Mona Manager');
  const mona = (await t.app.latchkey.store.users.findByEmail('mona@example.org'))!;
  await t.app.latchkey.store.roles.set(mona.id, ['ra_manager'], null, clock.now);
  await t.app.latchkey.store.webhooks.insertEndpoint({
    id: 'all',
    url: 'https://hr.example.org/hooks',
    description: '',
    events: JSON.stringify(WEBHOOK_EVENT_TYPES),
    secret: t.app.latchkey.secretBox.seal('whsec_dGVzdHRlc3R0ZXN0dGVzdHRlc3R0ZXN0', webhookSecretContext('all')),
    created_by: mona.id,
    created_at: clock.now,
  });
});
afterAll(async () => t.close());

/** Deliveries written since the last call, as [type, payload], sorted by type (one change may write several at once). */
const seen = new Set<string>();
async function newDeliveries(): Promise<[string, { type: string; data: Record<string, any> }][]> {
  const fresh = (await t.app.latchkey.store.webhooks.listDeliveries('all', 1000)).filter((d) => !seen.has(d.id));
  for (const d of fresh) seen.add(d.id);
  return fresh.map((d): [string, { type: string; data: Record<string, any> }] => [d.event_type, JSON.parse(d.payload)]).sort((a, b) => a[0].localeCompare(b[0]));
}

/** Register a passkey through an enrolment link in `browser`. */
async function registerThrough(browser: TestBrowser, path: string) {
  await browser.get(path);
  const opts = await browser.postJson(`${path}/options`, { name: 'Work phone', placement: 'another-device' });
  return browser.postJson(`${path}/verify`, { response: authenticator().createCredential(opts.json().options), name: 'Work phone' });
}

describe('webhook events from the real flows', () => {
  let kim: User;
  const secrets: string[] = [];

  it('adding a person is user.created, naming who added them', async () => {
    expect((await manager.postForm('/admin/users/new', { name: 'Kim Lee', email: 'kim@example.org', nationalId: 'AB 12 34 56 C' })).statusCode).toBe(303);
    kim = (await t.app.latchkey.store.users.findByEmail('kim@example.org'))!;
    const [[type, payload], ...more] = await newDeliveries();
    expect(more).toEqual([]);
    expect(type).toBe('user.created');
    expect(payload.data).toMatchObject({ user: { id: kim.id, email: 'kim@example.org', name: 'Kim Lee' }, actor: { email: 'mona@example.org' }, via: 'console' });
  });

  it('a link, a code and an email are enrolment.issued once each; emailing a link again is not', async () => {
    const link = await manager.get((await manager.postForm(`/admin/users/${kim.id}/enrolments`, { method: 'link' })).headers.location as string);
    const token = /\/enrol\/([A-Za-z0-9_-]{43})/.exec(link.body)![1]!;
    const flowId = /\/admin\/enrolments\/([A-Za-z0-9_-]+)\/status/.exec(link.body)![1]!;
    secrets.push(token);
    expect((await manager.postForm(`/admin/users/${kim.id}/enrolments/${flowId}/email`, { token })).statusCode).toBe(303);
    const code = await manager.get((await manager.postForm(`/admin/users/${kim.id}/enrolments`, { method: 'code' })).headers.location as string);
    secrets.push(/id="enrolment-code"><span aria-hidden="true">([0-9A-Z-]{11})</.exec(code.body)![1]!.replace(/-/g, ''));
    expect((await manager.postForm(`/admin/users/${kim.id}/enrolments`, { method: 'email' })).statusCode).toBe(303);
    const issued = await newDeliveries();
    expect(issued.map(([type, p]) => [type, p.data.enrolment.method]).sort()).toEqual([
      ['enrolment.issued', 'code'],
      ['enrolment.issued', 'email'],
      ['enrolment.issued', 'link'],
    ]);
    expect(issued.find(([, p]) => p.data.enrolment.method === 'link')![1].data.enrolment.id).toBe(flowId);
  });

  it('setting up a passkey from a link is enrolment.completed and authenticator.added (kind passkey)', async () => {
    const issued = await manager.get((await manager.postForm(`/admin/users/${kim.id}/enrolments`, { method: 'link' })).headers.location as string);
    const path = /\/enrol\/[A-Za-z0-9_-]{43}/.exec(issued.body)![0];
    secrets.push(path.slice(7));
    expect((await registerThrough(new TestBrowser(t.app), path)).json().redirect).toBe('/enrol/done');
    const [passkey] = await t.app.latchkey.store.authenticators.listForUser(kim.id);
    const events = await newDeliveries();
    expect(events.map(([type]) => type)).toEqual(['authenticator.added', 'enrolment.completed', 'enrolment.issued']);
    expect(events[1]![1].data).toMatchObject({ user: { id: kim.id }, enrolment: { method: 'link' }, authenticator: { id: passkey!.id } });
    // The same enrolment id as when it was issued, so whoever issued it can match the two.
    expect(events[1]![1].data.enrolment.id).toBe(events[2]![1].data.enrolment.id);
    expect(events[1]![1].data.enrolment.id).toEqual(expect.any(String));
    expect(events[0]![1].data.authenticator).toEqual({ id: passkey!.id, kind: 'passkey' });
  });

  it('roles, removal and suspension are role.changed, authenticator.removed and user.suspended', async () => {
    const [passkey] = await t.app.latchkey.store.authenticators.listForUser(kim.id);
    await manager.postForm(`/admin/users/${kim.id}/roles`, { roles: 'ra_agent' });
    await manager.postForm(`/admin/users/${kim.id}/authenticators/${passkey!.id}/remove`, { confirm: 'yes' });
    await manager.postForm(`/admin/users/${kim.id}/status`, { action: 'suspend' });
    await manager.postForm(`/admin/users/${kim.id}/status`, { action: 'reactivate' });
    const events = await newDeliveries();
    expect(events.map(([type]) => type)).toEqual(['authenticator.removed', 'role.changed', 'user.suspended']);
    expect(events[1]![1].data.roles).toEqual({ added: ['ra_agent'], removed: [] });
    expect(events[0]![1].data.authenticator).toEqual({ id: passkey!.id, kind: 'passkey' });
  });

  it('signing up is user.created (via signup) and authenticator.added; signing in is nothing', async () => {
    const auth = authenticator();
    await signUp(t.app, auth, 'sam@example.org', 'Sam Sign-Up');
    const events = await newDeliveries();
    expect(events.map(([type, p]) => [type, p.data.via])).toEqual([
      ['authenticator.added', undefined],
      ['user.created', 'signup'],
    ]);
    // Signing in with that passkey writes none.
    const browser = new TestBrowser(t.app);
    await browser.get('/signin');
    const options = (await browser.postJson('/signin/options', { mode: 'discoverable' })).json().options;
    expect((await browser.postJson('/signin/verify', { response: auth.getAssertion(options) })).statusCode).toBe(200);
    expect((await t.app.latchkey.store.audit.listByEvent('signin')).length).toBeGreaterThan(0);
    expect(await newDeliveries()).toEqual([]);
  });

  it('no payload carries a link token, a code or the national identifier', async () => {
    const payloads = (await t.app.latchkey.store.webhooks.listDeliveries('all', 1000)).map((d) => d.payload).join('\n');
    expect(secrets.length).toBeGreaterThanOrEqual(3);
    for (const secret of secrets) expect(payloads).not.toContain(secret);
    expect(payloads).not.toMatch(/AB ?12 ?34 ?56 ?C/);
    expect(payloads).not.toContain('nationalId');
  });
});
