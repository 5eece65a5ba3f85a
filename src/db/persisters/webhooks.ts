import { sql, type Kysely } from 'kysely';
import { randomToken } from '../../crypto.js';
import { webhookEventFor, webhookPayload, type AuditedChange } from '../../webhooks/events.js';
import type { Database, WebhookDelivery, WebhookEndpoint, WebhookEndpointStatus } from '../schema.js';

/** How much of a receiver's answer is kept to show in the console. */
export const RESPONSE_BODY_LIMIT = 2048;

/** A Standard Webhooks message id: the `webhook-id` header, the same on every attempt so receivers can drop repeats. */
export function newMessageId(): string {
  return `msg_${randomToken(18)}`;
}

/** A delivery claimed for sending, with what sending needs from its endpoint. */
export interface ClaimedDelivery extends WebhookDelivery {
  url: string;
  secret: string;
}

export type NewWebhookEndpoint = Omit<WebhookEndpoint, 'status' | 'paused_at' | 'consecutive_failures' | 'updated_at'>;

/** What an attempt got back: an HTTP answer, or an error without one. */
export interface AttemptResult {
  status?: number;
  body?: string;
  error?: string;
}

export class WebhookPersister {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Write the outbox rows for an audited change, on the caller's connection (the transaction of the change): one per
   * endpoint that chose its event, active or paused (a paused endpoint gets what it missed when resumed). Records that
   * are no webhook event return before any query.
   */
  async enqueueFor(change: AuditedChange): Promise<number> {
    const found = webhookEventFor(change);
    if (!found) return 0;
    const endpoints = (await this.db.selectFrom('webhook_endpoints').select(['id', 'events']).execute()).filter((e) => subscribed(e.events, found.type));
    if (!endpoints.length) return 0;
    const person = (id: string | null | undefined) =>
      id ? this.db.selectFrom('users').select(['id', 'email', 'display_name']).where('id', '=', id).executeTakeFirst() : Promise.resolve(undefined);
    // One after another: a transaction is one connection.
    const user = await person(change.subjectUserId);
    const actor = change.actorUserId && change.actorUserId !== change.subjectUserId ? await person(change.actorUserId) : undefined;
    const authenticator = change.authenticatorId
      ? await this.db.selectFrom('authenticators').select(['id', 'type']).where('id', '=', change.authenticatorId).executeTakeFirst()
      : undefined;
    const payload = webhookPayload(change, found, { user, actor: actor ?? (change.actorUserId === change.subjectUserId ? user : undefined), authenticator });
    await this.db
      .insertInto('webhook_deliveries')
      .values(endpoints.map((e) => ({ id: newMessageId(), endpoint_id: e.id, event_type: found.type, payload, created_at: change.at, status: 'pending' as const, next_attempt_at: change.at })))
      .execute();
    return endpoints.length;
  }

  /**
   * {@link enqueueFor} for many records at once (bulk import): one look at the endpoints, the people named looked up a
   * batch at a time, one multi-row insert per batch. Records without endpoints for their event cost nothing more.
   */
  async enqueueForMany(changes: readonly AuditedChange[]): Promise<number> {
    const found = changes.map((change) => ({ change, event: webhookEventFor(change) })).filter((c) => c.event !== undefined);
    if (!found.length) return 0;
    const endpoints = await this.db.selectFrom('webhook_endpoints').select(['id', 'events']).execute();
    const wanted = found.map((c) => ({ ...c, to: endpoints.filter((e) => subscribed(e.events, c.event!.type)) })).filter((c) => c.to.length);
    let written = 0;
    for (let i = 0; i < wanted.length; i += ENQUEUE_BATCH) {
      const batch = wanted.slice(i, i + ENQUEUE_BATCH);
      const ids = [...new Set(batch.flatMap(({ change }) => [change.subjectUserId, change.actorUserId]).filter((id): id is string => !!id))];
      const people = new Map((ids.length ? await this.db.selectFrom('users').select(['id', 'email', 'display_name']).where('id', 'in', ids).execute() : []).map((u) => [u.id, u]));
      const rows = batch.flatMap(({ change, event, to }) => {
        const user = change.subjectUserId ? people.get(change.subjectUserId) : undefined;
        const actor = change.actorUserId ? people.get(change.actorUserId) : undefined;
        const payload = webhookPayload(change, event!, { user, actor, authenticator: undefined });
        return to.map((e) => ({ id: newMessageId(), endpoint_id: e.id, event_type: event!.type, payload, created_at: change.at, status: 'pending' as const, next_attempt_at: change.at }));
      });
      await this.db.insertInto('webhook_deliveries').values(rows).execute();
      written += rows.length;
    }
    return written;
  }

  // ---------------------------------------------------------------- endpoints

  async insertEndpoint(endpoint: NewWebhookEndpoint): Promise<void> {
    await this.db
      .insertInto('webhook_endpoints')
      .values({ ...endpoint, status: 'active', updated_at: endpoint.created_at, paused_at: null, consecutive_failures: 0 })
      .execute();
  }

  findEndpoint(id: string): Promise<WebhookEndpoint | undefined> {
    return this.db.selectFrom('webhook_endpoints').selectAll().where('id', '=', id).executeTakeFirst();
  }

  listEndpoints(): Promise<WebhookEndpoint[]> {
    return this.db.selectFrom('webhook_endpoints').selectAll().orderBy('created_at').orderBy('id').execute();
  }

  async updateEndpoint(id: string, fields: { events?: string; description?: string; secret?: string }, now: number): Promise<boolean> {
    const r = await this.db.updateTable('webhook_endpoints').set({ ...fields, updated_at: now }).where('id', '=', id).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /** Pause an active endpoint; false when it was not active (already paused by another instance or a person). */
  async pause(id: string, now: number): Promise<boolean> {
    const r = await this.db
      .updateTable('webhook_endpoints')
      .set({ status: 'paused', paused_at: now, updated_at: now })
      .where('id', '=', id)
      .where('status', '=', 'active')
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /** Resume a paused endpoint: what waited is due now and its failures start again from none. False when it was not paused. */
  async resume(id: string, now: number): Promise<boolean> {
    const r = await this.db
      .updateTable('webhook_endpoints')
      .set({ status: 'active', paused_at: null, consecutive_failures: 0, updated_at: now })
      .where('id', '=', id)
      .where('status', '=', 'paused')
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) !== 1) return false;
    await this.db.updateTable('webhook_deliveries').set({ next_attempt_at: now }).where('endpoint_id', '=', id).where('status', '=', 'pending').execute();
    return true;
  }

  async deleteEndpoint(id: string): Promise<boolean> {
    // Its deliveries go with it (ON DELETE CASCADE); said here too for databases where foreign keys are off.
    await this.db.deleteFrom('webhook_deliveries').where('endpoint_id', '=', id).execute();
    const r = await this.db.deleteFrom('webhook_endpoints').where('id', '=', id).executeTakeFirst();
    return Number(r.numDeletedRows) === 1;
  }

  /** Count a failed attempt against the endpoint; returns the count since its last success. */
  async countFailure(id: string): Promise<number> {
    await this.db
      .updateTable('webhook_endpoints')
      .set((eb) => ({ consecutive_failures: eb('consecutive_failures', '+', 1) }))
      .where('id', '=', id)
      .execute();
    const row = await this.db.selectFrom('webhook_endpoints').select('consecutive_failures').where('id', '=', id).executeTakeFirst();
    return row?.consecutive_failures ?? 0;
  }

  async countSuccess(id: string): Promise<void> {
    await this.db.updateTable('webhook_endpoints').set({ consecutive_failures: 0 }).where('id', '=', id).where('consecutive_failures', '<>', 0).execute();
  }

  // ---------------------------------------------------------------- deliveries

  async insertDelivery(d: { id: string; endpoint_id: string; event_type: string; payload: string; created_at: number }): Promise<void> {
    await this.db
      .insertInto('webhook_deliveries')
      .values({ ...d, status: 'pending', next_attempt_at: d.created_at })
      .execute();
  }

  findDelivery(id: string): Promise<WebhookDelivery | undefined> {
    return this.db.selectFrom('webhook_deliveries').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** An endpoint's deliveries, newest first. */
  listDeliveries(endpointId: string, limit = 50): Promise<WebhookDelivery[]> {
    return this.db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('endpoint_id', '=', endpointId)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
  }

  /** Pending deliveries of each endpoint (the console's list). */
  async countPending(): Promise<Map<string, number>> {
    const rows = await this.db
      .selectFrom('webhook_deliveries')
      .select(['endpoint_id', sql<number>`count(*)`.as('n')])
      .where('status', '=', 'pending')
      .groupBy('endpoint_id')
      .execute();
    return new Map(rows.map((r) => [r.endpoint_id, Number(r.n)]));
  }

  /**
   * Claim up to `limit` due deliveries of active endpoints until `claimUntil`, oldest first. Each claim is one
   * conditional update, so of two instances polling together exactly one gets each delivery; a claim left by an
   * instance that died runs out and the delivery is due again.
   */
  async claimDue(now: number, claimUntil: number, limit: number): Promise<ClaimedDelivery[]> {
    const due = await this.db
      .selectFrom('webhook_deliveries as d')
      .innerJoin('webhook_endpoints as e', 'e.id', 'd.endpoint_id')
      .select('d.id')
      .where('d.status', '=', 'pending')
      .where('d.next_attempt_at', '<=', now)
      .where('e.status', '=', 'active')
      .where((eb) => eb.or([eb('d.claimed_until', 'is', null), eb('d.claimed_until', '<=', now)]))
      .orderBy('d.next_attempt_at')
      .orderBy('d.id')
      .limit(limit)
      .execute();
    const claimed: ClaimedDelivery[] = [];
    for (const { id } of due) {
      const r = await this.db
        .updateTable('webhook_deliveries')
        .set({ claimed_until: claimUntil })
        .where('id', '=', id)
        .where('status', '=', 'pending')
        .where((eb) => eb.or([eb('claimed_until', 'is', null), eb('claimed_until', '<=', now)]))
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1) continue;
      const row = await this.db
        .selectFrom('webhook_deliveries as d')
        .innerJoin('webhook_endpoints as e', 'e.id', 'd.endpoint_id')
        .selectAll('d')
        .select(['e.url', 'e.secret'])
        .where('d.id', '=', id)
        .executeTakeFirst();
      if (row) claimed.push(row);
    }
    return claimed;
  }

  /**
   * Record an attempt of a claimed delivery: delivered, due again at `nextAttemptAt`, or failed for good (null).
   * False when the claim was no longer this attempt's (the row changed meanwhile).
   */
  async recordAttempt(id: string, claimedUntil: number, now: number, result: AttemptResult & { delivered: boolean; nextAttemptAt: number | null }): Promise<boolean> {
    const status = result.delivered ? 'delivered' : result.nextAttemptAt === null ? 'failed' : 'pending';
    const r = await this.db
      .updateTable('webhook_deliveries')
      .set((eb) => ({
        status,
        attempts: eb('attempts', '+', 1),
        claimed_until: null,
        last_attempt_at: now,
        response_status: result.status ?? null,
        response_body: result.body === undefined ? null : result.body.slice(0, RESPONSE_BODY_LIMIT),
        error: result.error ?? null,
        delivered_at: result.delivered ? now : null,
        ...(result.nextAttemptAt !== null ? { next_attempt_at: result.nextAttemptAt } : {}),
      }))
      .where('id', '=', id)
      .where('status', '=', 'pending')
      .where('claimed_until', '=', claimedUntil)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /** "Send again": a failed delivery starts its schedule over, due now. False when it had not failed. */
  async retry(id: string, endpointId: string, now: number): Promise<boolean> {
    const r = await this.db
      .updateTable('webhook_deliveries')
      .set({ status: 'pending', attempts: 0, next_attempt_at: now, claimed_until: null })
      .where('id', '=', id)
      .where('endpoint_id', '=', endpointId)
      .where('status', '=', 'failed')
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /** Drop delivered and failed deliveries created before `before` (housekeeping); pending ones stay until sent. */
  async deleteFinishedBefore(before: number): Promise<number> {
    const r = await this.db.deleteFrom('webhook_deliveries').where('status', 'in', ['delivered', 'failed']).where('created_at', '<', before).executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}

/** Records per batch in enqueueForMany: well under SQLite's and PostgreSQL's bound-parameter limits. */
const ENQUEUE_BATCH = 500;

function subscribed(events: string, type: string): boolean {
  try {
    const list: unknown = JSON.parse(events);
    return Array.isArray(list) && list.includes(type);
  } catch {
    return false;
  }
}

export type { WebhookEndpointStatus };
