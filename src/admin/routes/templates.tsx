/** Enrolment email templates in the console: list, add, edit with a preview, delete (never the default). */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { audit } from '../../audit.js';
import { appError } from '../../errors.js';
import { randomToken } from '../../crypto.js';
import { html } from '../../http/replies.js';
import { Csrf, CsrfBody, Id } from '../../http/schemas.js';
import { renderPage } from '../../views/render.js';
import { checkTemplate, renderTemplate, sampleValues } from '../emailTemplates.js';
import { agentOf } from '../guard.js';
import { TemplateEditPage, TemplatesPage } from '../views.js';
import { adminContext as ctx, Flash, flashFor } from './shared.js';

const TemplateParams = Type.Object({ templateId: Id });
const TemplateBody = Type.Object({
  ...Csrf,
  name: Type.Optional(Type.String({ maxLength: 2000 })),
  subject: Type.Optional(Type.String({ maxLength: 2000 })),
  body: Type.Optional(Type.String({ maxLength: 20000 })),
  action: Type.Optional(Type.Union([Type.Literal('save'), Type.Literal('preview')])),
});

export async function consoleTemplatesRoutes(app: FastifyInstance) {
  const { config, store, now } = app.latchkey;
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const permission = 'templates.manage';

  r.get('/admin/templates', { config: { permission }, schema: { querystring: Flash } }, async (request, reply) => {
    return html(reply, renderPage(<TemplatesPage {...ctx(request)} templates={await store.emailTemplates.list()} flash={flashFor(request.query.done)} />));
  });

  r.get('/admin/templates/new', { config: { permission } }, async (request, reply) => {
    const fallback = await store.emailTemplates.findDefault();
    const values = { name: '', subject: fallback?.subject ?? '', body: fallback?.body ?? '' };
    return html(reply, renderPage(<TemplateEditPage {...ctx(request)} values={values} errors={[]} />));
  });

  r.get('/admin/templates/:templateId', { config: { permission }, schema: { params: TemplateParams } }, async (request, reply) => {
    const template = await store.emailTemplates.findById(request.params.templateId);
    if (!template) throw appError('not_found', 'That template was not found.');
    return html(reply, renderPage(<TemplateEditPage {...ctx(request)} template={template} values={template} errors={[]} />));
  });

  async function saveTemplate(request: FastifyRequest, reply: FastifyReply, body: Static<typeof TemplateBody>, templateId?: string) {
    const template = templateId ? await store.emailTemplates.findById(templateId) : undefined;
    if (templateId && !template) throw appError('not_found', 'That template was not found.');
    const values = { name: (body.name ?? '').trim(), subject: (body.subject ?? '').trim(), body: (body.body ?? '').replace(/\r\n/g, '\n') };
    const errors = checkTemplate(values);
    if (errors.length || body.action === 'preview') {
      const sample = sampleValues(config.organisation);
      const preview = errors.length ? undefined : { subject: renderTemplate(values.subject, sample), body: renderTemplate(values.body, sample) };
      return html(reply, renderPage(<TemplateEditPage {...ctx(request)} template={template} values={values} errors={errors} preview={preview} />), errors.length ? 400 : 200);
    }
    const by = agentOf(request).user.id;
    const t = now();
    await store.transaction(async (tx) => {
      if (template) await tx.emailTemplates.update(template.id, values, by, t);
      else await tx.emailTemplates.insert({ id: randomToken(9), ...values, is_default: 0, created_at: t, updated_at: t, updated_by: by });
      await audit(app, request, { event: template ? 'template.updated' : 'template.created', detail: { name: values.name } }, tx);
    });
    return reply.redirect('/admin/templates?done=template-saved', 303);
  }

  r.post('/admin/templates/new', { config: { permission }, schema: { body: TemplateBody } }, (request, reply) => saveTemplate(request, reply, request.body));
  r.post('/admin/templates/:templateId', { config: { permission }, schema: { params: TemplateParams, body: TemplateBody } }, (request, reply) =>
    saveTemplate(request, reply, request.body, request.params.templateId),
  );

  r.post('/admin/templates/:templateId/delete', { config: { permission }, schema: { params: TemplateParams, body: CsrfBody } }, async (request, reply) => {
    const template = await store.emailTemplates.findById(request.params.templateId);
    if (!template) throw appError('not_found', 'That template was not found.');
    if (template.is_default) throw appError('template_default', undefined);
    await store.transaction(async (tx) => {
      await tx.emailTemplates.delete(template.id);
      await audit(app, request, { event: 'template.deleted', detail: { name: template.name } }, tx);
    });
    return reply.redirect('/admin/templates?done=template-deleted', 303);
  });
}
