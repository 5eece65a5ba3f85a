/**
 * Webhooks on SQLite and PostgreSQL: the outbox is written in the transaction of the change (none for a rollback),
 * deliveries reach a real HTTP receiver signed so the Standard Webhooks library verifies them, failures are retried on
 * the schedule and pause the endpoint (its owner emailed), two instances never send one delivery twice, and links that
 * expire unused are reported once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { createTestApp, type TestApp } from '../../test/support/app.js';
import { testDatabases } from '../../test/support/databases.js';
import { startSmtpSink, type SmtpSink } from '../../test/support/smtpSink.js';
import { startWebhookReceiver, type WebhookReceiver } from '../../test/support/webhookReceiver.js';
import { audit } from '../audit.js';
import { issueInvite } from '../flows/enrolment/invites.js';
import { reportExpiredEnrolments } from '../flows/enrolment/reportExpiredEnrolments.js';
import { createUser } from '../users/createUser.js';
import { newWebhookSecret } from '../admin/routes/webhooks.js';
import { sendDueWebhooks, webhookSecretContext } from './deliverWebhooks.js';
import type { WebhookEventType } from './events.js';

const T0 = Date.UTC(2026, 11, 1, 9);
const databases = await testDatabases();

let sink: SmtpSink;
let receiver: WebhookReceiver;
beforeAll(async () => {
  sink = await startSmtpSink();
  receiver = await startWebhookReceiver();
});
afterAll(async () => {
  await receiver.close();
  await sink.close();
});

describe.each(databases)('webhooks on $name', (target) => {
  describe.skipIf(target.skipReason !== undefined)('', () => {
    afterAll(() => target.cleanup());

    async function setUp(env: Record<string, string> = {}) {
      const clock = { now: T0 };
      const db = await target.open();
      const t = await createTestApp({ LATCHKEY_SMTP_URL: sink.url, LATCHKEY_WEBHOOK_RETRY_SECONDS: '0,5,60', ...env }, { db, now: () => clock.now });
      const { store, secretBox } = t.app.latchkey;
      const owner = await createUser(store, { email: `manager-${Math.random()}@example.org`, displayName: 'Mona Manager' }, clock.now);
      const person = await createUser(store, { email: `person-${Math.random()}@example.org`, displayName: "Pat O'Person" }, clock.now);
      const addEndpoint = async (events: WebhookEventType[], url = receiver.url) => {
        const id = `ep${Math.random().toString(36).slice(2, 10)}`;
        const secret = newWebhookSecret();
        await store.webhooks.insertEndpoint({ id, url, description: 'HR feed', events: JSON.stringify(events), secret: secretBox.seal(secret, webhookSecretContext(id)), created_by: owner.id, created_at: clock.now });
        return { id, secret };
      };
      const deliveries = (endpointId: string) => store.webhooks.listDeliveries(endpointId);
      return { t, clock, store, owner, person, addEndpoint, deliveries };
    }
    const suspend = (t: TestApp, userId: string, actorUserId: string | null, fail = false) =>
      t.app.latchkey.store.transaction(async (tx) => {
        await tx.users.setStatus(userId, 'suspended', t.app.latchkey.now());
        await audit(t.app, null, { event: 'user.suspended', subjectUserId: userId, actorUserId }, tx);
        if (fail) throw new Error('rolled back after the audit record');
      });

    it('writes a delivery in the transaction of the change: none for a rollback, one per subscribed endpoint for a commit, none for other events', async () => {
      const { t, store, owner, person, addEndpoint, deliveries } = await setUp();
      try {
        const hr = await addEndpoint(['user.suspended', 'role.changed']);
        const other = await addEndpoint(['authenticator.added']);
        await expect(suspend(t, person.id, owner.id, true)).rejects.toThrow('rolled back');
        expect(await deliveries(hr.id)).toEqual([]);
        expect((await store.users.findById(person.id))!.status).toBe('pending');

        await suspend(t, person.id, owner.id);
        const [d, ...more] = await deliveries(hr.id);
        expect(more).toEqual([]);
        expect(d).toMatchObject({ event_type: 'user.suspended', status: 'pending', attempts: 0, created_at: T0, next_attempt_at: T0 });
        expect(d!.id).toMatch(/^msg_[\w-]+$/);
        expect(JSON.parse(d!.payload)).toEqual({
          type: 'user.suspended',
          timestamp: new Date(T0).toISOString(),
          data: { user: { id: person.id, email: person.email, name: "Pat O'Person" }, actor: { id: owner.id, email: owner.email, name: 'Mona Manager' } },
        });
        expect(await deliveries(other.id)).toEqual([]);

        // Sign-ins are audited on every sign-in and are no webhook event; an audit record outside a transaction is
        // written with its deliveries in one of its own.
        await audit(t.app, null, { event: 'signin', subjectUserId: person.id });
        await audit(t.app, null, { event: 'roles.changed', subjectUserId: person.id, actorUserId: owner.id, detail: { added: ['ra_agent'], removed: [] } });
        const types = (await deliveries(hr.id)).map((x) => x.event_type).sort();
        expect(types).toEqual(['role.changed', 'user.suspended']);
        const roles = (await deliveries(hr.id)).find((x) => x.event_type === 'role.changed')!;
        expect(JSON.parse(roles.payload).data.roles).toEqual({ added: ['ra_agent'], removed: [] });
      } finally {
        await t.close();
      }
    });

    it('sends each delivery to a real receiver, signed so the Standard Webhooks library verifies it; a wrong secret does not', async () => {
      const { t, store, owner, person, addEndpoint, deliveries } = await setUp();
      try {
        const hr = await addEndpoint(['user.suspended']);
        receiver.answer = { status: 200, body: 'thanks' };
        await suspend(t, person.id, owner.id);
        const [d] = await deliveries(hr.id);
        expect(await sendDueWebhooks(t.app)).toBe(1);
        const got = await receiver.waitFor((r) => r.signed['webhook-id'] === d!.id);
        expect(got.body).toBe(d!.payload);
        expect(got.headers['content-type']).toBe('application/json');
        expect(new Webhook(hr.secret).verify(got.body, got.signed)).toMatchObject({ type: 'user.suspended', data: { user: { id: person.id } } });
        expect(() => new Webhook(newWebhookSecret()).verify(got.body, got.signed)).toThrow();
        expect(() => new Webhook(hr.secret).verify(got.body.replace('Pat', 'Pam'), got.signed)).toThrow();
        const [after] = await deliveries(hr.id);
        expect(after).toMatchObject({ status: 'delivered', attempts: 1, response_status: 200, response_body: 'thanks', delivered_at: T0, claimed_until: null });
        // Delivered once: nothing is due any more.
        expect(await sendDueWebhooks(t.app)).toBe(0);
        expect((await store.webhooks.findEndpoint(hr.id))!.consecutive_failures).toBe(0);
      } finally {
        receiver.answer = { status: 204 };
        await t.close();
      }
    });

    it('retries on the schedule, then fails the delivery, pauses the endpoint and emails its owner; resuming sends what waited', async () => {
      const { t, clock, store, owner, person, addEndpoint, deliveries } = await setUp();
      try {
        const hr = await addEndpoint(['user.suspended', 'role.changed']);
        receiver.answer = { status: 503, body: 'down for maintenance' };
        await suspend(t, person.id, owner.id);
        const id = (await deliveries(hr.id))[0]!.id;
        const attempts = () => receiver.received.filter((r) => r.signed['webhook-id'] === id).length;

        expect(await sendDueWebhooks(t.app)).toBe(1);
        expect((await store.webhooks.findDelivery(id))!).toMatchObject({ status: 'pending', attempts: 1, response_status: 503, response_body: 'down for maintenance', next_attempt_at: T0 + 5_000 });
        clock.now += 4_999;
        expect(await sendDueWebhooks(t.app)).toBe(0);
        clock.now += 1;
        expect(await sendDueWebhooks(t.app)).toBe(1);
        expect((await store.webhooks.findDelivery(id))!).toMatchObject({ status: 'pending', attempts: 2, next_attempt_at: clock.now + 60_000 });
        expect(attempts()).toBe(2);
        sink.clear();
        clock.now += 60_000;
        expect(await sendDueWebhooks(t.app)).toBe(1);
        expect((await store.webhooks.findDelivery(id))!).toMatchObject({ status: 'failed', attempts: 3 });
        const endpoint = (await store.webhooks.findEndpoint(hr.id))!;
        expect(endpoint).toMatchObject({ status: 'paused', paused_at: clock.now, consecutive_failures: 3 });
        const mail = await sink.waitFor((m) => m.to.includes(owner.email));
        expect(mail.subject).toContain('webhook endpoint paused');
        expect(mail.text).toContain(receiver.url);
        expect(mail.text).toContain('HTTP 503');
        expect(mail.text).toContain(`/admin/webhooks/${hr.id}`);
        expect((await store.audit.listByEvent('webhook.paused'))[0]).toMatchObject({ actor_user_id: null });

        // While paused: events are kept, nothing is sent.
        await audit(t.app, null, { event: 'roles.changed', subjectUserId: person.id, actorUserId: owner.id, detail: { added: [], removed: ['ra_agent'] } });
        clock.now += 3_600_000;
        expect(await sendDueWebhooks(t.app)).toBe(0);
        receiver.answer = { status: 202 };
        expect(await store.webhooks.resume(hr.id, clock.now)).toBe(true);
        expect(await sendDueWebhooks(t.app)).toBe(1);
        expect((await deliveries(hr.id)).map((d) => [d.event_type, d.status])).toEqual([
          ['role.changed', 'delivered'],
          ['user.suspended', 'failed'],
        ]);
        // "Send again" starts the failed one over.
        expect(await store.webhooks.retry(id, hr.id, clock.now)).toBe(true);
        expect(await sendDueWebhooks(t.app)).toBe(1);
        expect((await store.webhooks.findDelivery(id))!).toMatchObject({ status: 'delivered', attempts: 1, response_status: 202 });
        expect(attempts()).toBe(4);
      } finally {
        receiver.answer = { status: 204 };
        await t.close();
      }
    });

    it('follows no redirect and gives up on a receiver that does not answer', async () => {
      const { t, store, owner, person, addEndpoint, deliveries } = await setUp({ LATCHKEY_WEBHOOK_RETRY_SECONDS: '0' });
      try {
        const moved = await addEndpoint(['user.suspended']);
        // A closed port: nothing listens.
        const nobody = await startWebhookReceiver();
        await nobody.close();
        const gone = await addEndpoint(['user.suspended'], nobody.url);
        receiver.answer = { status: 308, body: '' };
        await suspend(t, person.id, owner.id);
        expect(await sendDueWebhooks(t.app)).toBe(2);
        expect((await deliveries(moved.id))[0]).toMatchObject({ status: 'failed', response_status: 308 });
        expect((await deliveries(moved.id))[0]!.error).toContain('redirects are not followed');
        expect((await deliveries(gone.id))[0]).toMatchObject({ status: 'failed', response_status: null, error: 'ECONNREFUSED' });
        expect((await store.webhooks.findEndpoint(gone.id))!.status).toBe('paused');
      } finally {
        receiver.answer = { status: 204 };
        await t.close();
      }
    });

    it('two instances polling together send each delivery once', async () => {
      const { t, clock, owner, addEndpoint, deliveries } = await setUp();
      const second = await createTestApp({}, { db: t.db, now: () => clock.now });
      try {
        const hr = await addEndpoint(['user.created']);
        for (let i = 0; i < 12; i++) {
          await audit(t.app, null, { event: 'user.created', subjectUserId: owner.id, detail: { n: i } });
        }
        const ids = (await deliveries(hr.id)).map((d) => d.id);
        expect(ids).toHaveLength(12);
        const [a, b] = await Promise.all([sendDueWebhooks(t.app), sendDueWebhooks(second.app)]);
        expect(a + b).toBe(12);
        const seen = receiver.received.filter((r) => ids.includes(r.signed['webhook-id']!)).map((r) => r.signed['webhook-id']);
        expect(seen.sort()).toEqual([...ids].sort());
        expect((await deliveries(hr.id)).every((d) => d.status === 'delivered' && d.attempts === 1)).toBe(true);
      } finally {
        await second.close();
        await t.close();
      }
    });

    it('reports a link that expired unused once (audit enrolment.expired and its webhook), and none that was used or revoked', async () => {
      const { t, clock, store, person, addEndpoint, deliveries } = await setUp();
      try {
        const hr = await addEndpoint(['enrolment.expired', 'enrolment.issued']);
        // The first sweep only sets its mark: links that expired before are not reported.
        expect(await reportExpiredEnrolments(t.app)).toBe(0);
        const revoked = await issueInvite(store, t.config, person, clock.now, { lifetimeSeconds: 60 });
        await store.flows.revoke(revoked.flowId, clock.now);
        const link = await issueInvite(store, t.config, person, clock.now, { lifetimeSeconds: 60, revokeEarlier: false });
        clock.now += 59_000;
        expect(await reportExpiredEnrolments(t.app)).toBe(0);
        clock.now += 1_000;
        expect(await reportExpiredEnrolments(t.app)).toBe(1);
        expect(await reportExpiredEnrolments(t.app)).toBe(0);
        clock.now += 3_600_000;
        expect(await reportExpiredEnrolments(t.app)).toBe(0);
        const [record, ...others] = await store.audit.listByEvent('enrolment.expired');
        expect(others).toEqual([]);
        expect(record).toMatchObject({ subject_user_id: person.id, actor_user_id: null });
        expect(JSON.parse(record!.detail)).toMatchObject({ flowId: link.flowId, method: 'link' });
        const [d, ...more] = await deliveries(hr.id);
        expect(more).toEqual([]);
        const payload = JSON.parse(d!.payload);
        expect(payload).toMatchObject({ type: 'enrolment.expired', data: { user: { id: person.id }, enrolment: { id: link.flowId, method: 'link' } } });
        expect(payload.data.actor).toBeUndefined();
        expect(d!.payload).not.toContain(link.token);
      } finally {
        await t.close();
      }
    });
  });
});
