/**
 * Bulk import over the admin API: the CSV file as the request body, checked and written by the same importer as the
 * console and `latchkey users import` (src/users/import), answered with its report. Nothing is written when a line is
 * refused, unless `skipInvalid=true`; `dryRun=true` only checks.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { appError } from '../../errors.js';
import { can } from '../../admin/roles.js';
import { Id } from '../../http/schemas.js';
import { findEnrolmentTemplate } from '../../flows/enrolment/enrolmentEmail.js';
import { IMPORT_FILE_MAX_MEGABYTES, ImportFileError, importUsers } from '../../users/import/importUsers.js';
import { requestContext } from '../../plugins/sessions.js';
import { apiTokenOf } from '../guard.js';
import { errorResponses, fieldLabels } from '../schemas.js';

const MAX_BYTES = IMPORT_FILE_MAX_MEGABYTES * 1024 * 1024;
const Flag = Type.Union([Type.Literal('true'), Type.Literal('false')]);

const ImportQuery = Type.Object({
  skipInvalid: Type.Optional(Type.Union([Flag], { description: 'true: write the valid lines even when others are refused' })),
  dryRun: Type.Optional(Type.Union([Flag], { description: 'true: check and report only; nothing is written' })),
  sendEnrolmentEmail: Type.Optional(Type.Union([Flag], { description: 'true: email each new user an enrolment link (after they are written)' })),
  templateId: Type.Optional(Id),
  fileName: Type.Optional(Type.String({ maxLength: 200, description: 'Recorded in the audit log' })),
});

const ImportReportJson = Type.Object(
  {
    importId: Type.String(),
    rows: Type.Integer({ description: 'Data lines read' }),
    written: Type.Boolean({ description: 'false for a dry run, and when lines were refused without skipInvalid' }),
    created: Type.Integer({ description: 'New users (or, when nothing was written, those that would be created)' }),
    skipped: Type.Array(Type.Object({ line: Type.Integer(), email: Type.String(), reason: Type.String() }), { description: 'Lines whose person already exists' }),
    refused: Type.Array(Type.Object({ line: Type.Integer(), field: Type.String(), message: Type.String() }), { description: 'Each problem, by line and column' }),
    refusedLines: Type.Integer(),
    mailed: Type.Integer(),
    mailFailures: Type.Array(Type.Object({ line: Type.Integer(), email: Type.String(), message: Type.String() })),
  },
  { description: 'What the import did, by line' },
);

export async function apiImportsRoutes(app: FastifyInstance) {
  const { config, store, secret, now, mailer } = app.latchkey;
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  // Only here: the rest of the API takes JSON of at most 64 KiB.
  app.addContentTypeParser(['text/csv', 'text/plain'], { parseAs: 'string', bodyLimit: MAX_BYTES }, (_request, body, done) => done(null, body));

  r.post(
    '/api/v1/users/import',
    {
      bodyLimit: MAX_BYTES,
      config: { permission: 'users.add', fieldLabels: fieldLabels({ skipInvalid: 'skipInvalid', dryRun: 'dryRun', sendEnrolmentEmail: 'sendEnrolmentEmail', templateId: 'templateId', fileName: 'fileName' }) },
      schema: {
        operationId: 'importUsers',
        summary: 'Import users from a CSV file',
        description: `The body is the CSV file (\`Content-Type: text/csv\`, at most ${IMPORT_FILE_MAX_MEGABYTES} MB): a header line naming the columns name, email and optionally national insurance number and roles (roles only with a token whose role may grant them). Every line is checked before anything is written, as the console's import does.`,
        tags: ['users'],
        querystring: ImportQuery,
        consumes: ['text/csv'],
        body: Type.String({ description: 'The CSV file' }),
        response: { 200: ImportReportJson, ...errorResponses('unsupported_media_type', 'payload_too_large') },
      },
    },
    async (request) => {
      const token = apiTokenOf(request);
      const q = request.query;
      const enrolmentEmail = q.sendEnrolmentEmail === 'true' ? { template: await findEnrolmentTemplate(store, q.templateId), lifetimeSeconds: config.inviteSeconds } : undefined;
      const ctx = requestContext(request);
      try {
        return await importUsers({ store, config, secret, now, mailer, metrics: app.latchkey.metrics }, request.body, {
          fileName: q.fileName ?? 'api.csv',
          skipInvalid: q.skipInvalid === 'true',
          dryRun: q.dryRun === 'true',
          enrolmentEmail,
          canGrantRoles: can([token.role], 'roles.manage'),
          actor: { userId: null, tokenId: token.id, ip: ctx.ip, userAgent: ctx.userAgent },
          source: 'api',
        });
      } catch (err) {
        if (err instanceof ImportFileError) throw appError('validation_failed', `${err.message} Nothing was imported.`, [{ field: 'body', message: err.message }]);
        throw err;
      }
    },
  );
}
