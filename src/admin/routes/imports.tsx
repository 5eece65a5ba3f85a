/**
 * Bulk import in the console: upload a CSV file, check it (nothing written), confirm, and follow the job's progress
 * to its report (src/users/import). The upload is the only multipart form, so its parser and larger size limit are
 * registered in this plugin alone.
 */
import { IMPORT_FILE_MAX_MEGABYTES } from '../../users/import/importUsers.js';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { auditRefusal } from '../../audit.js';
import { appError } from '../../errors.js';
import { html } from '../../http/replies.js';
import { Csrf, CsrfBody, Id } from '../../http/schemas.js';
import { acceptMultipartUpload } from '../../http/multipartUpload.js';
import { requestContext } from '../../plugins/sessions.js';
import { renderPage } from '../../views/render.js';
import { nationalIdFormat } from '../../users/nationalId.js';
import { importReportCsv } from '../../users/import/describeImportReport.js';
import { checkImportFile, jobGrantsRoles, readJobOptions, readJobReport, runImportJob } from '../../users/import/importJobs.js';
import { ImportFileError } from '../../users/import/readUserCsv.js';
import { exampleUserCsv } from '../../users/import/readUserCsv.js';
import { agentOf } from '../guard.js';
import { ImportCheckPage, ImportProgressPage, ImportUploadPage } from '../importViews.js';
import { can } from '../roles.js';
import { adminContext as ctx } from './shared.js';

/** The largest file the console takes: about 200,000 people. Larger imports go through `latchkey users import`. */

const UploadBody = Type.Object({
  ...Csrf,
  file: Type.Optional(Type.Object({ filename: Type.String({ maxLength: 1000 }), text: Type.String() })),
  sendEmail: Type.Optional(Type.Literal('yes')),
  template: Type.Optional(Id),
});
const ImportParams = Type.Object({ id: Id });

export async function consoleImportsRoutes(app: FastifyInstance) {
  const { config, store, secret, mailer, now } = app.latchkey;
  const nationalId = nationalIdFormat(config);
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  /** Jobs this instance is running: closing waits for them, so a batch is never cut off by the database closing. */
  const running = new Set<Promise<void>>();
  app.addHook('onClose', async () => {
    await Promise.allSettled(running);
  });
  acceptMultipartUpload(app, {
    fileField: 'file',
    maxFileBytes: IMPORT_FILE_MAX_MEGABYTES * 1024 * 1024,
    tooLargeMessage: `The file is larger than ${IMPORT_FILE_MAX_MEGABYTES} MB. Split it into smaller files, or ask your administrator to use latchkey users import.`,
  });

  const uploadPage = async (request: Parameters<typeof ctx>[0], errors: { field: string; message: string }[], chosen: { sendEmail?: boolean; templateId?: string } = {}) =>
    renderPage(
      <ImportUploadPage
        {...ctx(request)}
        nationalId={nationalId}
        templates={await store.emailTemplates.list()}
        maxFileMegabytes={IMPORT_FILE_MAX_MEGABYTES}
        errors={errors}
        canGrantRoles={can(agentOf(request).roles, 'roles.manage')}
        {...chosen}
      />,
    );

  r.get('/admin/users/import', { config: { permission: 'users.add' } }, async (request, reply) => html(reply, await uploadPage(request, [])));

  r.get('/admin/users/import/example.csv', { config: { permission: 'users.add' } }, async (_request, reply) =>
    reply.type('text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="users-example.csv"').send(exampleUserCsv(nationalId)),
  );

  r.post(
    '/admin/users/import',
    { config: { permission: 'users.add' }, bodyLimit: IMPORT_FILE_MAX_MEGABYTES * 1024 * 1024 + 64 * 1024, schema: { body: UploadBody } },
    async (request, reply) => {
      const { file, sendEmail, template } = request.body;
      const chosen = { sendEmail: sendEmail === 'yes', templateId: template };
      if (!file) return html(reply, await uploadPage(request, [{ field: 'file', message: 'Choose a CSV file' }], chosen), 400);
      const agent = agentOf(request);
      try {
        const job = await checkImportFile(
          { store, config, secret, now },
          { fileName: file.filename, text: file.text },
          { userId: agent.user.id, canGrantRoles: can(agent.roles, 'roles.manage') },
          { sendEmail: chosen.sendEmail, templateId: chosen.sendEmail ? template : undefined },
        );
        if (job.rolesNotAllowed) {
          // Lines that would have granted roles this agent may not grant: a refused privileged action, on record.
          await auditRefusal(app, request, { event: 'console.refused', outcome: 'refused', reason: 'forbidden', detail: { importId: job.id, rolesRefusedLines: job.rolesNotAllowed } });
        }
        return reply.redirect(`/admin/imports/${job.id}`, 303);
      } catch (err) {
        if (!(err instanceof ImportFileError)) throw err;
        return html(reply, await uploadPage(request, [{ field: 'file', message: err.message }], chosen), 400);
      }
    },
  );

  async function loadJob(id: string) {
    const job = await store.userImports.findById(id);
    if (!job) throw appError('not_found', 'That import was not found. Checks that were not confirmed are removed after a day.');
    return job;
  }

  r.get('/admin/imports/:id', { config: { permission: 'users.add' }, schema: { params: ImportParams } }, async (request, reply) => {
    const job = await loadJob(request.params.id);
    const report = readJobReport(job);
    if (job.state === 'checked') {
      const options = readJobOptions(job);
      const template = options.sendEmail ? await store.emailTemplates.findById(options.templateId ?? '') ?? (await store.emailTemplates.findDefault()) : undefined;
      return html(
        reply,
        renderPage(<ImportCheckPage {...ctx(request)} job={job} report={report} options={options} templateName={template?.name} isUploader={job.created_by === agentOf(request).user.id} />),
      );
    }
    return html(reply, renderPage(<ImportProgressPage {...ctx(request)} job={job} report={report} now={now()} />));
  });

  r.post('/admin/imports/:id/start', { config: { permission: 'users.add' }, schema: { params: ImportParams, body: CsrfBody } }, async (request, reply) => {
    const job = await loadJob(request.params.id);
    const agent = agentOf(request);
    // The rows were checked against the uploader's roles (who may grant roles): only they can confirm them.
    if (job.created_by !== agent.user.id) throw appError('forbidden', 'Only the agent who uploaded this file can start its import.');
    // Roles were allowed when the file was checked; the agent may have lost the right since.
    if (job.state === 'checked' && !can(agent.roles, 'roles.manage') && jobGrantsRoles(job)) throw appError('forbidden', 'Your role no longer allows granting roles. Upload the file again.');
    if (job.to_create > 0 && (await store.userImports.start(job.id, now()))) {
      const client = requestContext(request);
      const actor = { userId: agent.user.id, ip: client.ip, userAgent: client.userAgent };
      // In the background: the agent follows it on the progress page, which reads the job's row.
      const run = runImportJob({ store, config, secret, mailer, now, log: app.log, metrics: app.latchkey.metrics }, job.id, actor).finally(() => running.delete(run));
      running.add(run);
    }
    return reply.redirect(`/admin/imports/${job.id}`, 303);
  });

  r.get('/admin/imports/:id/report.csv', { config: { permission: 'users.add' }, schema: { params: ImportParams } }, async (request, reply) => {
    const job = await loadJob(request.params.id);
    return reply
      .type('text/csv; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('content-disposition', `attachment; filename="import-report-${job.id}.csv"`)
      .send(importReportCsv(readJobReport(job)));
  });
}
