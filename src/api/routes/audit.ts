/**
 * The audit log in the admin API: search it a page at a time, or export what a search finds as CSV — the console's
 * filters and CSV (src/admin/auditExport.ts), the export audited as `audit.exported` like the console's.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { audit, auditEventLabel, auditEventLabelsFor } from '../../audit.js';
import { validationFailed } from '../../errors.js';
import type { AuditRow } from '../../db/persisters/audit.js';
import { auditCsv, auditCsvFileName, AUDIT_CSV_LIMIT, readAuditFilter } from '../../admin/auditExport.js';
import { Cursor, decodeCursor, encodeCursor, errorResponses, fieldLabels, iso, Limit, Page } from '../schemas.js';

const Day = (description: string) => Type.String({ maxLength: 10, description: `${description} (YYYY-MM-DD, UTC)` });
const Filters = {
  event: Type.Optional(Type.String({ maxLength: 64, description: 'One event, e.g. enrolment.link_issued' })),
  actor: Type.Optional(Type.String({ maxLength: 254, description: 'Who acted: a person’s email address, or an API token’s id' })),
  subject: Type.Optional(Type.String({ maxLength: 254, description: 'Whom it was about: a person’s email address' })),
  from: Type.Optional(Day('From this day')),
  to: Type.Optional(Day('To this day, inclusive')),
};
const SearchQuery = Type.Object({ ...Filters, limit: Type.Optional(Limit), cursor: Type.Optional(Cursor) });
const ExportQuery = Type.Object(Filters);

const Person = (description: string) =>
  Type.Union([Type.Object({ id: Type.String(), email: Type.Union([Type.String(), Type.Null()]), name: Type.Union([Type.String(), Type.Null()]) }), Type.Null()], { description });
const AuditEventJson = Type.Object(
  {
    id: Type.Integer(),
    at: Type.String({ format: 'date-time' }),
    event: Type.String(),
    label: Type.String({ description: 'The event in words, as the console shows it' }),
    outcome: Type.Union([Type.Literal('success'), Type.Literal('failure'), Type.Literal('refused')]),
    actor: Person('The person who acted (email and name null once removed); null when a token or no one did'),
    actorTokenId: Type.Union([Type.String(), Type.Null()], { description: 'The API token that acted' }),
    subject: Person('The person it was about'),
    authenticatorId: Type.Union([Type.String(), Type.Null()]),
    ip: Type.Union([Type.String(), Type.Null()]),
    userAgent: Type.Union([Type.String(), Type.Null()]),
    detail: Type.Unknown({ description: 'What else was recorded (an object; never a secret)' }),
  },
  { description: 'An audit record' },
);
const tags = ['audit'];

export async function apiAuditRoutes(app: FastifyInstance) {
  const { store, now, kinds } = app.latchkey;
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const labels = fieldLabels({ event: 'event', actor: 'actor', subject: 'subject', from: 'from', to: 'to' });
  const eventLabels = auditEventLabelsFor(kinds);

  const person = (id: string | null, email: string | null, name: string | null) => (id ? { id, email, name } : null);
  const eventJson = (row: AuditRow) => {
    let detail: unknown = {};
    try {
      detail = JSON.parse(row.detail);
    } catch {
      detail = {};
    }
    return {
      id: Number(row.id),
      at: iso(Number(row.at))!,
      event: row.event,
      label: auditEventLabel(eventLabels, row),
      outcome: row.outcome,
      actor: person(row.actor_user_id, row.actor_email, row.actor_name),
      actorTokenId: row.actor_token_id,
      subject: person(row.subject_user_id, row.subject_email, row.subject_name),
      authenticatorId: row.authenticator_id,
      ip: row.ip,
      userAgent: row.user_agent,
      detail,
    };
  };

  r.get(
    '/api/v1/audit',
    {
      config: { permission: 'audit.read', fieldLabels: labels },
      schema: {
        operationId: 'searchAudit',
        summary: 'Search the audit log',
        description: 'Newest first; filters combine (as the console’s audit page). Pages follow `nextCursor`.',
        tags,
        querystring: SearchQuery,
        response: { 200: Page(AuditEventJson, 'A page of audit records'), ...errorResponses() },
      },
    },
    async (request) => {
      const { errors, filter } = await readAuditFilter(store, request.query);
      if (errors.length) throw validationFailed(errors);
      const limit = request.query.limit ?? 25;
      const before = request.query.cursor ? decodeCursor(request.query.cursor, ['number'] as const)[0] : undefined;
      const rows = await store.audit.search({ ...filter, beforeId: before }, limit + 1);
      const page = rows.slice(0, limit);
      return { items: page.map(eventJson), nextCursor: rows.length > limit ? encodeCursor([Number(page[page.length - 1]!.id)]) : null };
    },
  );

  r.get(
    '/api/v1/audit.csv',
    {
      config: { permission: 'audit.read', fieldLabels: labels },
      schema: {
        operationId: 'exportAudit',
        summary: 'Export the audit log as CSV',
        description: `The console’s CSV export: what the filters find, newest first, at most ${AUDIT_CSV_LIMIT.toLocaleString('en-GB')} rows; cells that spreadsheets would run as formulas are defused. Recorded as \`audit.exported\`.`,
        tags,
        querystring: ExportQuery,
        response: { 200: { description: 'CSV (RFC 4180), a header row first', content: { 'text/csv': { schema: Type.String() } } }, ...errorResponses() },
      },
    },
    async (request, reply) => {
      const { errors, filter } = await readAuditFilter(store, request.query);
      if (errors.length) throw validationFailed(errors);
      const rows = await store.audit.search(filter, AUDIT_CSV_LIMIT);
      await audit(app, request, { event: 'audit.exported', detail: { rows: rows.length, filter: { ...request.query }, via: 'api' } });
      return reply
        .type('text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="${auditCsvFileName(now())}"`)
        .header('cache-control', 'no-store')
        .send(auditCsv(rows));
    },
  );
}
