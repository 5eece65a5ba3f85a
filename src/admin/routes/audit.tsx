/** The audit log in the console: search it, and export what a search finds as CSV. */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { audit, auditEventLabelsFor } from '../../audit.js';
import { appError } from '../../errors.js';
import { html } from '../../http/replies.js';
import { renderPage } from '../../views/render.js';
import { auditCsv, auditCsvFileName, AUDIT_CSV_LIMIT, readAuditFilter } from '../auditExport.js';
import { AuditPage } from '../views.js';
import { adminContext as ctx, AUDIT_PAGE_SIZE, RecordId } from './shared.js';

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
    const { values, errors, filter } = await readAuditFilter(store, q);
    return { values, errors, filter: { ...filter, beforeId: q.before ? Number(q.before) : undefined } };
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
    const rows = await store.audit.search(filter, AUDIT_CSV_LIMIT);
    await audit(app, request, { event: 'audit.exported', detail: { rows: rows.length, filter: { ...request.query } } });
    return reply
      .type('text/csv; charset=utf-8')
      .header('content-disposition', `attachment; filename="${auditCsvFileName(now())}"`)
      .header('cache-control', 'no-store')
      .send(auditCsv(rows));
  });
}
