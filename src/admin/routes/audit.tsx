/** The audit log in the console: search it, and export what a search finds as CSV. */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { audit, auditEventLabelsFor } from '../../audit.js';
import { appError, type FieldError } from '../../errors.js';
import { randomToken } from '../../crypto.js';
import { html } from '../../http/replies.js';
import { renderPage } from '../../views/render.js';
import { csvCell } from '../csvCell.js';
import { AuditPage, type AuditFilterValues } from '../views.js';
import { adminContext as ctx, AUDIT_PAGE_SIZE, RecordId } from './shared.js';

const CSV_LIMIT = 100_000;

const AuditQuery = Type.Object({
  event: Type.Optional(Type.String({ maxLength: 64 })),
  actor: Type.Optional(Type.String({ maxLength: 254 })),
  subject: Type.Optional(Type.String({ maxLength: 254 })),
  from: Type.Optional(Type.String({ maxLength: 10 })),
  to: Type.Optional(Type.String({ maxLength: 10 })),
  before: Type.Optional(RecordId),
});

export async function consoleAuditRoutes(app: FastifyInstance) {
  const { store, now } = app.latchkey;
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  async function auditFilter(q: Static<typeof AuditQuery>) {
    const values: AuditFilterValues = { event: q.event ?? '', actor: (q.actor ?? '').trim(), subject: (q.subject ?? '').trim(), from: q.from ?? '', to: q.to ?? '' };
    const errors: FieldError[] = [];
    const day = (field: 'from' | 'to', value: string) => {
      if (!value) return undefined;
      const t = /^\d{4}-\d{2}-\d{2}$/.test(value) ? Date.parse(`${value}T00:00:00Z`) : NaN;
      if (Number.isNaN(t)) errors.push({ field, message: 'Enter a date like 2026-11-22' });
      return Number.isNaN(t) ? undefined : t;
    };
    const from = day('from', values.from);
    const toStart = day('to', values.to);
    const person = async (email: string) => {
      if (!email) return undefined;
      const u = await store.users.findByEmail(email);
      // No match is an empty result, not an error: the person may have been removed.
      return u?.id ?? `none:${randomToken(4)}`;
    };
    // An email address names a person; anything else an API token, by its id or name (src/admin/views.tsx actorOf).
    const actorIsToken = values.actor !== '' && !values.actor.includes('@');
    const filter = {
      event: values.event || undefined,
      actorUserId: actorIsToken ? undefined : await person(values.actor),
      actorTokenIds: actorIsToken ? await store.apiTokens.idsByIdOrName(values.actor) : undefined,
      subjectUserId: await person(values.subject),
      from,
      to: toStart === undefined ? undefined : toStart + 24 * 3600 * 1000,
      beforeId: q.before ? Number(q.before) : undefined,
    };
    return { values, errors, filter };
  }

  r.get('/admin/audit', { config: { permission: 'audit.read' }, schema: { querystring: AuditQuery } }, async (request, reply) => {
    const { values, errors, filter } = await auditFilter(request.query);
    const rows = errors.length ? [] : await store.audit.search(filter, AUDIT_PAGE_SIZE + 1);
    const events = rows.slice(0, AUDIT_PAGE_SIZE);
    const nextBefore = rows.length > AUDIT_PAGE_SIZE ? events[events.length - 1]!.id : undefined;
    const page = <AuditPage {...ctx(request)} filter={values} events={events} nextBefore={nextBefore} errors={errors} events_known={Object.keys(auditEventLabelsFor(app.latchkey.kinds)).sort()} />;
    return html(reply, renderPage(page), errors.length ? 400 : 200);
  });

  r.get('/admin/audit.csv', { config: { permission: 'audit.read' }, schema: { querystring: AuditQuery } }, async (request, reply) => {
    const { errors, filter } = await auditFilter(request.query);
    if (errors.length) throw appError('validation_failed', errors[0]!.message, errors);
    const rows = await store.audit.search(filter, CSV_LIMIT);
    // The token columns come after the person's: an event has one or the other (or neither: Latchkey did it).
    const header = ['time', 'event', 'outcome', 'actor_email', 'actor_name', 'actor_token_id', 'actor_token_name', 'subject_email', 'subject_name', 'authenticator_id', 'ip', 'user_agent', 'detail'];
    const lines = [header.join(',')];
    for (const row of rows) {
      lines.push(
        [
          new Date(row.at).toISOString(),
          row.event,
          row.outcome,
          row.actor_email,
          row.actor_name,
          row.actor_token_id,
          row.actor_token_name,
          row.subject_email,
          row.subject_name,
          row.authenticator_id,
          row.ip,
          row.user_agent,
          row.detail,
        ]
          .map(csvCell)
          .join(','),
      );
    }
    await audit(app, request, { event: 'audit.exported', detail: { rows: rows.length, filter: { ...request.query } } });
    return reply
      .type('text/csv; charset=utf-8')
      .header('content-disposition', `attachment; filename="latchkey-audit-${new Date(now()).toISOString().slice(0, 10)}.csv"`)
      .header('cache-control', 'no-store')
      .send(lines.join('\r\n') + '\r\n');
  });
}
