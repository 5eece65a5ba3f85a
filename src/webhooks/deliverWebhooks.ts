/**
 * Webhook delivery: every instance polls the outbox (webhook_deliveries) every LATCHKEY_WEBHOOK_POLL_SECONDS, claims
 * what is due and POSTs it, signed to the Standard Webhooks spec with the `standardwebhooks` package. Deliveries never
 * depend on the request that made the change: a change commits its outbox rows, and whichever instance is running
 * later sends them, after a crash too. At least once: a receiver may see a delivery again (same `webhook-id`) when an
 * instance dies between sending and recording.
 *
 * An answer 2xx is delivered; anything else (another status, a redirect, no answer within 10 seconds) is tried again
 * on config.webhookRetrySeconds. When the last attempt fails the delivery is failed, the endpoint is paused (its other
 * deliveries wait, and new events are kept for it) and the RA Manager who added it is emailed.
 *
 * The same loop runs the sweep that records links and codes that expired unused (reportExpiredEnrolments).
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Webhook } from 'standardwebhooks';
import { audit } from '../audit.js';
import type { ClaimedDelivery, AttemptResult } from '../db/persisters/webhooks.js';
import { RESPONSE_BODY_LIMIT } from '../db/persisters/webhooks.js';
import { reportExpiredEnrolments } from '../flows/enrolment/reportExpiredEnrolments.js';
import { sendWebhookPausedNotice } from '../mail/sendWebhookPausedNotice.js';

/** How long a receiver has to answer. */
export const WEBHOOK_TIMEOUT_MS = 10_000;
/** A claim outlasts any attempt (timeout included), so no other instance sends the delivery meanwhile. */
const CLAIM_MS = WEBHOOK_TIMEOUT_MS + 20_000;
/** Deliveries sent at once per instance per poll. */
const BATCH = 20;
/** How often expired links and codes are looked for. */
export const EXPIRY_SWEEP_MS = 5_000;

/** The context a sealed endpoint secret is bound to: it opens only on its own row. */
export function webhookSecretContext(endpointId: string): string {
  return `webhook-secret:${endpointId}`;
}

/** The headers of one signed attempt (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature). */
export function signedHeaders(secret: string, messageId: string, payload: string, at: Date): Record<string, string> {
  return {
    'content-type': 'application/json',
    'user-agent': 'Latchkey-Webhooks/1',
    'webhook-id': messageId,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': new Webhook(secret).sign(messageId, at, payload),
  };
}

/** POST one delivery and say what came back; never throws. */
export async function attemptDelivery(url: string, headers: Record<string, string>, payload: string): Promise<AttemptResult & { delivered: boolean }> {
  try {
    // No redirects followed: a receiver that moved is told to update its URL here, not silently followed elsewhere.
    const response = await fetch(url, { method: 'POST', headers, body: payload, redirect: 'manual', signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS) });
    const body = await readStart(response);
    const delivered = response.status >= 200 && response.status < 300;
    const redirect = response.status >= 300 && response.status < 400;
    return { delivered, status: response.status, body, ...(redirect ? { error: `redirected to ${response.headers.get('location') ?? 'nowhere'}: redirects are not followed` } : {}) };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    const error = e.name === 'TimeoutError' ? `no answer within ${WEBHOOK_TIMEOUT_MS / 1000} seconds` : (e.cause?.code ?? e.message);
    return { delivered: false, error };
  }
}

/** The first RESPONSE_BODY_LIMIT bytes of an answer (the rest is not read). */
async function readStart(response: Response): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  try {
    while (length < RESPONSE_BODY_LIMIT) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      length += value.length;
    }
  } catch {
    // A body cut short is still worth showing as far as it came.
  } finally {
    void reader.cancel().catch(() => {});
  }
  return Buffer.concat(chunks).subarray(0, RESPONSE_BODY_LIMIT).toString('utf8');
}

/** One pass over the outbox: claim what is due, send it, record each attempt. Returns how many were attempted. */
export async function sendDueWebhooks(app: FastifyInstance): Promise<number> {
  const { store, now } = app.latchkey;
  const t = now();
  const claimed = await store.webhooks.claimDue(t, t + CLAIM_MS, BATCH);
  await Promise.all(claimed.map((d) => deliverOne(app, d, t + CLAIM_MS)));
  return claimed.length;
}

async function deliverOne(app: FastifyInstance, d: ClaimedDelivery, claimedUntil: number): Promise<void> {
  const { store, secretBox, config, now, mailer } = app.latchkey;
  let result: AttemptResult & { delivered: boolean };
  try {
    const secret = secretBox.open(d.secret, webhookSecretContext(d.endpoint_id));
    // The real time, whatever clock schedules retries: receivers compare webhook-timestamp with theirs to refuse replays.
    result = await attemptDelivery(d.url, signedHeaders(secret, d.id, d.payload, new Date()), d.payload);
  } catch (err) {
    result = { delivered: false, error: `not sent: ${(err as Error).message}` };
  }
  const t = now();
  const delay = config.webhookRetrySeconds[d.attempts + 1];
  const nextAttemptAt = result.delivered || delay === undefined ? null : t + delay * 1000;
  const paused = await store.transaction(async (tx) => {
    if (!(await tx.webhooks.recordAttempt(d.id, claimedUntil, t, { ...result, nextAttemptAt }))) return false;
    if (result.delivered) {
      await tx.webhooks.countSuccess(d.endpoint_id);
      return false;
    }
    const failures = await tx.webhooks.countFailure(d.endpoint_id);
    if (nextAttemptAt !== null || !(await tx.webhooks.pause(d.endpoint_id, t))) return false;
    await audit(app, null, { event: 'webhook.paused', actorUserId: null, detail: { endpointId: d.endpoint_id, url: d.url, deliveryId: d.id, consecutiveFailures: failures } }, tx);
    return true;
  });
  app.log.info({ webhook: d.id, endpoint: d.endpoint_id, attempt: d.attempts + 1, status: result.status, error: result.error, delivered: result.delivered }, 'webhook attempt');
  if (!paused) return;
  const endpoint = await store.webhooks.findEndpoint(d.endpoint_id);
  const owner = endpoint?.created_by ? await store.users.findById(endpoint.created_by) : undefined;
  if (endpoint && owner) {
    const lastFailure = result.status ? `HTTP ${result.status}` : (result.error ?? 'no answer');
    await sendWebhookPausedNotice({ mailer, config, log: app.log }, owner, endpoint, lastFailure);
  }
}

/**
 * Polls the outbox and sweeps expired enrolments while the app runs (none when LATCHKEY_WEBHOOK_POLL_SECONDS=0).
 * Timers are unref'd and cleared on close; work in flight is awaited so nothing writes to a closed database.
 */
export const webhookDeliveryPlugin = fp(
  async (app: FastifyInstance) => {
    const { config } = app.latchkey;
    if (config.webhookPollSeconds === 0) return;
    let closed = false;
    let running: Promise<void> | undefined;
    let lastSweep = -Infinity;
    const tick = () => {
      if (closed || running) return;
      running = (async () => {
        try {
          if (Date.now() - lastSweep >= EXPIRY_SWEEP_MS) {
            lastSweep = Date.now();
            await reportExpiredEnrolments(app);
          }
          // Keep going while a full batch came back: a backlog drains without waiting a poll per batch.
          while (!closed && (await sendDueWebhooks(app)) === BATCH);
        } catch (err) {
          app.log.warn({ err: (err as Error).message }, 'webhook delivery pass failed');
        } finally {
          running = undefined;
        }
      })();
    };
    const timer = setInterval(tick, config.webhookPollSeconds * 1000);
    timer.unref();
    app.addHook('onReady', async () => tick());
    app.addHook('onClose', async () => {
      closed = true;
      clearInterval(timer);
      await running;
    });
  },
  { name: 'webhook-delivery' },
);
