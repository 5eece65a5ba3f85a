import { sql, type ExpressionBuilder, type Expression, type SqlBool, type Kysely } from 'kysely';
import { UNINDEXED_AUDIT_EVENT } from '../migrations.js';
import { PreparedQuery } from '../preparedQuery.js';
import type { AuditEvent, Database } from '../schema.js';
import { webhookEventFor } from '../../webhooks/events.js';
import { WebhookPersister } from './webhooks.js';

type NewAuditRow = Omit<AuditEvent, 'id'>;

// Every sign-in writes one (src/db/preparedQuery.ts).
const insertEvent = new PreparedQuery<NewAuditRow, never>((db, e) =>
  db.insertInto('audit_events').values({
    at: e.at,
    event: e.event,
    outcome: e.outcome,
    actor_user_id: e.actor_user_id,
    actor_token_id: e.actor_token_id,
    subject_user_id: e.subject_user_id,
    authenticator_id: e.authenticator_id,
    ip: e.ip,
    user_agent: e.user_agent,
    detail: e.detail,
  }),
  // Nothing reads its result: in a transaction on PostgreSQL it goes out with the next statement (src/db/pgClient.ts).
  { deferrable: true },
);

export interface AuditRecord {
  event: string;
  outcome: 'success' | 'failure' | 'refused';
  actorUserId?: string | null;
  /** The API token that acted (no person did). */
  actorTokenId?: string | null;
  subjectUserId?: string | null;
  authenticatorId?: string | null;
  ip?: string | null;
  userAgent?: string | null;
  detail?: Record<string, unknown>;
  at: number;
}

export interface AuditFilter {
  event?: string;
  actorUserId?: string;
  /** Events done by any of these API tokens (not empty). */
  actorTokenIds?: readonly string[];
  subjectUserId?: string;
  /** Inclusive lower and exclusive upper bound on `at`. */
  from?: number;
  to?: number;
  /** Only events with an id below this (the next page). */
  beforeId?: number;
}

/** An audit event with the names of its actor (a person or an API token) and subject, for the console and CSV export. */
export interface AuditRow extends AuditEvent {
  actor_email: string | null;
  actor_name: string | null;
  /** The name of the API token that acted, where one did (actor_token_id). */
  actor_token_name: string | null;
  subject_email: string | null;
  subject_name: string | null;
}

/**
 * For any event but sign-ins, repeat the partial indexes' condition (a literal, not a parameter) so both
 * databases can use audit_events_event; for sign-ins, no condition: they fill a page from the newest on.
 */
function notUnindexed(event: string) {
  return (eb: ExpressionBuilder<Database, 'audit_events'>): Expression<SqlBool> =>
    event === UNINDEXED_AUDIT_EVENT ? sql<SqlBool>`true` : eb('audit_events.event', '<>', sql.lit(UNINDEXED_AUDIT_EVENT));
}

/** The row a record is stored as (user agents cut to 512 characters, detail as JSON). */
function auditRow(r: AuditRecord): NewAuditRow {
  return {
    at: r.at,
    event: r.event,
    outcome: r.outcome,
    actor_user_id: r.actorUserId ?? null,
    actor_token_id: r.actorTokenId ?? null,
    subject_user_id: r.subjectUserId ?? null,
    authenticator_id: r.authenticatorId ?? null,
    ip: r.ip ?? null,
    user_agent: r.userAgent ? r.userAgent.slice(0, 512) : null,
    detail: JSON.stringify(r.detail ?? {}),
  };
}

export class AuditPersister {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Write the record and, when it is a webhook event (src/webhooks/events.ts), its outbox rows, on the same connection:
   * inside the caller's transaction, or in one of their own, so a record and its deliveries land together or not at all.
   */
  async record(r: AuditRecord): Promise<void> {
    if (!webhookEventFor(r)) return this.insert(r);
    if (this.db.isTransaction) {
      await this.insert(r);
      await new WebhookPersister(this.db).enqueueFor(r);
      return;
    }
    await this.db.transaction().execute(async (trx) => {
      await new AuditPersister(trx).insert(r);
      await new WebhookPersister(trx).enqueueFor(r);
    });
  }

  private async insert(r: AuditRecord): Promise<void> {
    await insertEvent.execute(this.db, auditRow(r));
  }

  /** Many records in one multi-row insert (bulk import writes one per new user). */
  async recordMany(records: AuditRecord[]): Promise<void> {
    if (!records.length) return;
    if (!this.db.isTransaction && records.some((r) => webhookEventFor(r))) {
      await this.db.transaction().execute((trx) => new AuditPersister(trx).recordMany(records));
      return;
    }
    await this.db.insertInto('audit_events').values(records.map(auditRow)).execute();
    // The same transaction as the records: a rolled-back batch sends nothing (src/webhooks).
    await new WebhookPersister(this.db).enqueueForMany(records);
  }

  listForSubject(userId: string, limit = 20): Promise<AuditEvent[]> {
    return this.db
      .selectFrom('audit_events')
      .selectAll()
      .where('subject_user_id', '=', userId)
      .orderBy('at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
  }

  /** Newest first; filters combine with AND. Append-only: there is no update or delete. */
  search(f: AuditFilter, limit: number): Promise<AuditRow[]> {
    return this.searchQuery(f, limit).execute() as Promise<AuditRow[]>;
  }

  /** The query behind {@link search}, uncompiled (tests read its plan). */
  searchQuery(f: AuditFilter, limit: number) {
    let q = this.db
      .selectFrom('audit_events')
      .leftJoin('users as actor', 'actor.id', 'audit_events.actor_user_id')
      .leftJoin('users as subject', 'subject.id', 'audit_events.subject_user_id')
      .leftJoin('api_tokens as actor_token', 'actor_token.id', 'audit_events.actor_token_id')
      .selectAll('audit_events')
      .select([
        'actor.email as actor_email',
        'actor.display_name as actor_name',
        'actor_token.name as actor_token_name',
        'subject.email as subject_email',
        'subject.display_name as subject_name',
      ]);
    if (f.event) q = q.where('audit_events.event', '=', f.event).where(notUnindexed(f.event));
    if (f.actorUserId) {
      const actor = f.actorUserId;
      // Sign-ins are left out of audit_events_actor; a sign-in's actor is its subject (audit_events_subject).
      q = q.where((eb) =>
        eb.or([
          eb.and([eb('audit_events.event', '<>', sql.lit(UNINDEXED_AUDIT_EVENT)), eb('audit_events.actor_user_id', '=', actor)]),
          eb.and([
            eb('audit_events.event', '=', sql.lit(UNINDEXED_AUDIT_EVENT)),
            eb('audit_events.subject_user_id', '=', actor),
            eb('audit_events.actor_user_id', '=', actor),
          ]),
        ]),
      );
    }
    if (f.actorTokenIds) q = q.where('audit_events.actor_token_id', 'in', f.actorTokenIds.length ? [...f.actorTokenIds] : ['']);
    if (f.subjectUserId) q = q.where('audit_events.subject_user_id', '=', f.subjectUserId);
    if (f.from !== undefined) q = q.where('audit_events.at', '>=', f.from);
    if (f.to !== undefined) q = q.where('audit_events.at', '<', f.to);
    if (f.beforeId !== undefined) q = q.where('audit_events.id', '<', f.beforeId);
    return q.orderBy('audit_events.id', 'desc').limit(limit);
  }

  listByEvent(event: string, limit = 100): Promise<AuditEvent[]> {
    return this.db.selectFrom('audit_events').selectAll().where('event', '=', event).where(notUnindexed(event)).orderBy('id', 'desc').limit(limit).execute();
  }
}
