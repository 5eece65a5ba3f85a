import type { Kysely } from 'kysely';
import type { AuditEvent, Database } from '../schema.js';

export interface AuditRecord {
  event: string;
  outcome: 'success' | 'failure';
  actorUserId?: string | null;
  subjectUserId?: string | null;
  authenticatorId?: string | null;
  ip?: string | null;
  userAgent?: string | null;
  detail?: Record<string, unknown>;
  at: number;
}

export class AuditPersister {
  constructor(private readonly db: Kysely<Database>) {}

  async record(r: AuditRecord): Promise<void> {
    await this.db
      .insertInto('audit_events')
      .values({
        at: r.at,
        event: r.event,
        outcome: r.outcome,
        actor_user_id: r.actorUserId ?? null,
        subject_user_id: r.subjectUserId ?? null,
        authenticator_id: r.authenticatorId ?? null,
        ip: r.ip ?? null,
        user_agent: r.userAgent ? r.userAgent.slice(0, 512) : null,
        detail: JSON.stringify(r.detail ?? {}),
      })
      .execute();
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

  listByEvent(event: string, limit = 100): Promise<AuditEvent[]> {
    return this.db.selectFrom('audit_events').selectAll().where('event', '=', event).orderBy('id', 'desc').limit(limit).execute();
  }
}
