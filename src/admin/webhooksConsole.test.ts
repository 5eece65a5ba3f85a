/**
 * The console's webhook pages over HTTP: an RA Manager adds an endpoint (the URL rule stated when refused, the
 * signing secret shown once and stored sealed), changes its events, pauses, resumes, replaces the secret, sends a test
 * event that a real receiver verifies, sends a failed delivery again and deletes it; each change audited. Other roles
 * get 403 and change nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { authenticator, createTestApp, signUp, type TestApp, type TestBrowser } from '../../test/support/app.js';
import { expectConfirmError } from '../../test/support/pages.js';
import { startWebhookReceiver, type WebhookReceiver } from '../../test/support/webhookReceiver.js';
import type { Role } from '../db/schema.js';
import { sendDueWebhooks } from '../webhooks/deliverWebhooks.js';

let t: TestApp;
let receiver: WebhookReceiver;
let manager: TestBrowser;
let n = 0;
const clock = { now: Date.UTC(2026, 11, 2, 10) };

async function agent(roles: Role[]): Promise<TestBrowser> {
  const email = `agent-${++n}@example.org`;
  const browser = await signUp(t.app, authenticator(), email, `Agent ${n}`);
  await t.app.latchkey.store.roles.set((await t.app.latchkey.store.users.findByEmail(email))!.id, roles, null, clock.now);
  return browser;
}

const secretOn = (html: string) => /<pre class="code" id="secret">(whsec_[A-Za-z0-9+/=]+)<\/pre>/.exec(html)?.[1];
const events = (html: string) => [...html.matchAll(/id="events-([a-z.]+)" name="events" value="[a-z.]+" checked/g)].map((m) => m[1]);
const audited = async (event: string) => (await t.app.latchkey.store.audit.listByEvent(event)).length;

beforeAll(async () => {
  receiver = await startWebhookReceiver();
  t = await createTestApp({ LATCHKEY_WEBHOOK_RETRY_SECONDS: '0' }, { now: () => clock.now });
  manager = await agent(['ra_manager']);
});
afterAll(async () => {
  await t.close();
  await receiver.close();
});

describe('webhook endpoints in the console', () => {
  it('refuses an address that is not https (stating the rule), carries credentials, or names no event, at the field', async () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ url: 'http://hr.example.org/hooks', events: 'user.created' }, /Enter an https:\/\/ address, such as https:\/\/hr\.example\.org\/latchkey-events \(http:\/\/ only to localhost or 127\.0\.0\.1 while Latchkey runs on http\)/],
      [{ url: 'https://bob:pw@hr.example.org/hooks', events: 'user.created' }, /Remove the user name and password from the address/],
      [{ url: 'ftp://hr.example.org/', events: 'user.created' }, /Enter an https:\/\/ address/],
      [{ url: 'https://hr.example.org/hooks' }, /Choose at least one event to send/],
      [{ url: 'https://hr.example.org/hooks', events: 'user.deleted' }, /Choose events from the list/],
    ];
    for (const [form, message] of cases) {
      const res = await manager.postForm('/admin/webhooks/new', form);
      expect(res.statusCode, JSON.stringify(form)).toBe(400);
      expect(res.body).toMatch(message);
      expect(res.body).toContain('<div class="error-summary"');
      expect(res.body).toMatch(/<a href="#(url|events-[a-z.]+)">/);
    }
    expect(await t.app.latchkey.store.webhooks.listEndpoints()).toEqual([]);
  });

  it('adds an endpoint, shows its secret once and keeps it sealed; a test event reaches the receiver and verifies with that secret', async () => {
    expect((await manager.get('/admin')).body).toContain('href="/admin/webhooks"');
    const form = await manager.get('/admin/webhooks/new');
    expect(form.statusCode).toBe(200);
    expect(form.body).toContain('Back to webhooks');
    const added = await manager.postForm('/admin/webhooks/new', { url: receiver.url, description: 'HR feed', events: 'user.created' });
    expect(added.statusCode).toBe(201);
    const secret = secretOn(added.body)!;
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    expect(added.body).toContain('shown only this once');
    const [endpoint] = await t.app.latchkey.store.webhooks.listEndpoints();
    expect(endpoint).toMatchObject({ url: receiver.url, description: 'HR feed', events: '["user.created"]', status: 'active' });
    expect(endpoint!.secret).not.toContain(secret.slice(6));
    expect(await audited('webhook.added')).toBe(1);
    const page = await manager.get(`/admin/webhooks/${endpoint!.id}`);
    expect(page.statusCode).toBe(200);
    expect(page.body).not.toContain(secret);
    expect(page.body).toContain('<dd>1 attempt: immediately. If the last fails');

    expect((await manager.postForm(`/admin/webhooks/${endpoint!.id}/test`, {})).statusCode).toBe(303);
    expect(await audited('webhook.test_sent')).toBe(1);
    expect(await sendDueWebhooks(t.app)).toBe(1);
    const got = receiver.received.at(-1)!;
    expect(new Webhook(secret).verify(got.body, got.signed)).toMatchObject({ type: 'webhook.test', data: { endpoint: { id: endpoint!.id } } });
    const list = await manager.get(`/admin/webhooks/${endpoint!.id}`);
    expect(list.body).toContain('Test event');
    expect(list.body).toContain('Delivered');
    expect(list.body).toContain('HTTP 204');

    // The delivery's page offers the same delivery as a curl command, signed now with the endpoint's secret.
    const delivery = (await t.app.latchkey.store.webhooks.listDeliveries(endpoint!.id))[0]!;
    const details = await manager.get(`/admin/webhooks/${endpoint!.id}/deliveries/${delivery.id}`);
    expect(details.statusCode).toBe(200);
    expect(details.body).toContain(`curl -i -X POST '${receiver.url}'`);
    expect(details.body).toMatch(/-H 'webhook-signature: v1,[A-Za-z0-9+/=]+'/);
  });

  it('changes events, pauses and resumes, replaces the secret, sends a failed delivery again, and deletes only when confirmed', async () => {
    const added = await manager.postForm('/admin/webhooks/new', { url: receiver.url, events: 'user.created' });
    const first = secretOn(added.body)!;
    const id = (await t.app.latchkey.store.webhooks.listEndpoints()).find((e) => e.description === '')!.id;
    const base = `/admin/webhooks/${id}`;

    const noEvents = await manager.postForm(base, { description: 'Helpdesk' });
    expect(noEvents.statusCode).toBe(400);
    expect(noEvents.body).toContain('Choose at least one event to send');
    const saved = await t.app.inject({
      method: 'POST',
      url: base,
      payload: `_csrf=${manager.csrf}&description=Helpdesk&events=user.suspended&events=role.changed`,
      headers: { cookie: [...manager.cookies].map(([k, v]) => `${k}=${v}`).join('; '), origin: 'http://localhost:3000', 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
    });
    expect(saved.statusCode).toBe(303);
    expect(events((await manager.get(base)).body)).toEqual(['user.suspended', 'role.changed']);
    expect(await audited('webhook.changed')).toBe(1);

    expect((await manager.postForm(`${base}/pause`, {})).headers.location).toBe(`${base}?done=paused`);
    expect((await manager.get(base)).body).toContain('Paused');
    expect((await manager.postForm(`${base}/pause`, {})).headers.location).toBe(`${base}?done=not-changed`);
    expect((await manager.postForm(`${base}/resume`, {})).headers.location).toBe(`${base}?done=resumed`);
    expect([await audited('webhook.paused'), await audited('webhook.resumed')]).toEqual([1, 1]);

    const rotated = await manager.postForm(`${base}/rotate`, {});
    expect(rotated.statusCode).toBe(200);
    const second = secretOn(rotated.body)!;
    expect(second).toMatch(/^whsec_/);
    expect(second).not.toBe(first);
    expect(await audited('webhook.secret_rotated')).toBe(1);

    // A delivery that fails (one attempt here) can be sent again; the new secret signs it.
    receiver.answer = { status: 500, body: 'no' };
    await manager.postForm(`${base}/test`, {});
    await sendDueWebhooks(t.app);
    const failed = (await t.app.latchkey.store.webhooks.listDeliveries(id))[0]!;
    expect(failed.status).toBe('failed');
    await manager.postForm(`${base}/resume`, {});
    const page = await manager.get(base);
    expect(page.body).toContain('Send again');
    expect(page.body).toContain('HTTP 500: no');
    receiver.answer = { status: 204 };
    expect((await manager.postForm(`${base}/deliveries/${failed.id}/retry`, {})).headers.location).toBe(`${base}?done=resent`);
    await sendDueWebhooks(t.app);
    expect((await t.app.latchkey.store.webhooks.findDelivery(failed.id))!.status).toBe('delivered');
    const got = receiver.received.at(-1)!;
    expect(new Webhook(second).verify(got.body, got.signed)).toBeTruthy();
    expect(() => new Webhook(first).verify(got.body, got.signed)).toThrow();

    expect((await manager.get(`${base}/delete`)).statusCode).toBe(200);
    const unconfirmed = await manager.postForm(`${base}/delete`, {});
    expect(unconfirmed.statusCode).toBe(400);
    expectConfirmError(unconfirmed.body, 'Select the box to confirm you want to delete the endpoint');
    expect((await manager.postForm(`${base}/delete`, { confirm: 'yes' })).headers.location).toBe('/admin/webhooks?done=deleted');
    expect(await t.app.latchkey.store.webhooks.findEndpoint(id)).toBeUndefined();
    expect(await t.app.latchkey.store.webhooks.listDeliveries(id)).toEqual([]);
    expect((await manager.get(base)).statusCode).toBe(404);
    expect(await audited('webhook.deleted')).toBe(1);
  });

  it('is for RA Managers only: every other role gets 403, changes nothing, and the refusal is audited', async () => {
    const [endpoint] = await t.app.latchkey.store.webhooks.listEndpoints();
    for (const roles of [['ra_agent'], ['ra_agent_advanced'], ['auditor']] as Role[][]) {
      const browser = await agent(roles);
      const before = JSON.stringify(await t.app.latchkey.store.webhooks.listEndpoints());
      expect((await browser.get('/admin/webhooks')).statusCode).toBe(403);
      expect((await browser.get(`/admin/webhooks/${endpoint!.id}`)).statusCode).toBe(403);
      expect((await browser.postForm('/admin/webhooks/new', { url: receiver.url, events: 'user.created' })).statusCode).toBe(403);
      expect((await browser.postForm(`/admin/webhooks/${endpoint!.id}/pause`, {})).statusCode).toBe(403);
      expect((await browser.postForm(`/admin/webhooks/${endpoint!.id}/delete`, { confirm: 'yes' })).statusCode).toBe(403);
      expect(JSON.stringify(await t.app.latchkey.store.webhooks.listEndpoints())).toBe(before);
      expect((await browser.get('/admin')).body).not.toContain('href="/admin/webhooks"');
    }
    const refusals = await t.app.latchkey.store.audit.listByEvent('console.refused');
    expect(refusals.filter((r) => JSON.parse(r.detail).action?.startsWith('POST /admin/webhooks')).length).toBeGreaterThanOrEqual(9);
  });
});
