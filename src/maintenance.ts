/**
 * Housekeeping the server runs every few minutes: delete ended sessions,
 * flows and unanswered WebAuthn challenges, forgotten runs of failed sign-ins and rate counters of past windows,
 * so the tables hold live data only. Consumed and expired invites are kept for a while so their links still
 * answer "already used" or "expired".
 */
import type { Config } from './config/index.js';
import type { Store } from './db/store.js';
import { INVITE_FLOW, INVITE_RETENTION_MS } from './flows/enrolment/invites.js';
import { pruneSigninFailures } from './strategies/throttle.js';

/** Rate counters (self-service, CAPTCHA) whose window started this long ago count nothing: no window is longer than an hour. */
const RATE_COUNTER_RETENTION_MS = 24 * 60 * 60 * 1000;
/**
 * Flows other than invites are kept this long after expiry, for troubleshooting. WebAuthn challenges are not kept:
 * the challenge store deletes each when it is used, and this job the unanswered ones once they expire.
 */
const FLOW_RETENTION_MS = 60 * 60 * 1000;
/** A bulk import checked in the console but not started is forgotten after this long (the agent uploads again). */
const UNCONFIRMED_IMPORT_RETENTION_MS = 24 * 60 * 60 * 1000;
export const MAINTENANCE_INTERVAL_MS = 10 * 60 * 1000;
/** Delivered and failed webhook deliveries are kept this long, for the console's list of what was sent. */
export const WEBHOOK_DELIVERY_RETENTION_MS = 30 * 24 * 60 * 60 * 1000;

export async function pruneExpired(
  store: Store,
  config: Config,
  now: number,
): Promise<{ sessions: number; flows: number; challenges: number; signinFailures: number; rateCounters: number; webhookDeliveries: number }> {
  const sessions = await store.sessions.deleteExpired(now, config.sessionIdleSeconds * 1000);
  const ended = await store.flows.deleteEnded(now, FLOW_RETENTION_MS, { exceptTypes: [INVITE_FLOW] });
  const invites = await store.flows.deleteEnded(now, INVITE_RETENTION_MS, { types: [INVITE_FLOW] });
  // WebAuthn challenges never answered (the database challenge store deletes each one when it is used).
  const challenges = await store.challenges.deleteExpired(now);
  // OpenID Connect codes, tokens, grants and interactions past their time.
  await store.oidcModels.deleteExpired(now);
  // Failed sign-ins at addresses without an account, a month after the last (strategies/throttle.ts).
  const signinFailures = await pruneSigninFailures(store, now);
  // Every address and IP that ever asked for a self-service check or solved a CAPTCHA left a counter.
  const rateCounters = await store.rateCounters.deleteBefore(now - RATE_COUNTER_RETENTION_MS);
  // Bulk-import checks nobody confirmed within a day: their validated rows hold HMACs of national identifiers.
  await store.userImports.dropUnconfirmed(now - UNCONFIRMED_IMPORT_RETENTION_MS);
  // Pending deliveries stay until sent, however old (a paused endpoint's wait for it to be resumed).
  const webhookDeliveries = await store.webhooks.deleteFinishedBefore(now - WEBHOOK_DELIVERY_RETENTION_MS);
  return { sessions, flows: ended + invites, challenges, signinFailures, rateCounters, webhookDeliveries };
}
