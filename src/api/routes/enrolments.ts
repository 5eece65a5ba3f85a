/**
 * Enrolments in the admin API: issue a link, a 9-character code or an enrolment email (issueEnrolment, as the
 * console does), list a person's, read one's live status, revoke one.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { appError } from '../../errors.js';
import type { Flow } from '../../db/schema.js';
import { Id } from '../../http/schemas.js';
import { CODE_FLOW, CODE_LENGTH, ENROLMENT_FLOWS, enrolmentData, INVITE_FLOW, loadEnrolmentStatus } from '../../flows/enrolment/invites.js';
import { issueEnrolment, revokeEnrolment } from '../../flows/enrolment/issueEnrolment.js';
import { apiTokenOf } from '../guard.js';
import { errorResponses, fieldLabels, iso, loadOtherUser, loadUser, OWN_ACCOUNT_MESSAGE, UserPath } from '../schemas.js';

const IssueBody = Type.Object({
  method: Type.Union([Type.Literal('link'), Type.Literal('code'), Type.Literal('email')], {
    description: 'link: a URL for you to pass on; code: 9 characters the person types at /enrol with their email; email: Latchkey emails them a link from a template',
  }),
  templateId: Type.Optional(Type.String({ maxLength: 64, pattern: '^[A-Za-z0-9_-]+$', description: 'The email template (method email); the default template when absent' })),
  securityKey: Type.Optional(Type.Boolean({ description: 'The console’s "Security key (AAL3)": only an attested security key can be registered with it' })),
});

const EnrolmentStatusSchema = Type.Union([Type.Literal('pending'), Type.Literal('enrolled'), Type.Literal('expired'), Type.Literal('revoked')], {
  description: 'pending: can still be used; enrolled: a passkey was registered with it; expired; revoked (by hand, by a newer one, or by suspending the person)',
});

const EnrolmentJson = Type.Object(
  {
    id: Type.String(),
    userId: Type.String(),
    method: Type.Union([Type.Literal('link'), Type.Literal('code'), Type.Literal('email'), Type.Literal('cli')]),
    status: EnrolmentStatusSchema,
    securityKey: Type.Boolean({ description: 'Registers only an attested security key (AAL3)' }),
    issuedAt: Type.String({ format: 'date-time' }),
    expiresAt: Type.String({ format: 'date-time' }),
  },
  { description: 'A link, code or enrolment email issued to a person' },
);

const IssuedJson = Type.Object(
  {
    ...EnrolmentJson.properties,
    url: Type.Optional(Type.String({ description: 'method link: the link, shown this once (only its hash is kept)' })),
    code: Type.Optional(Type.String({ minLength: CODE_LENGTH, maxLength: CODE_LENGTH, description: 'method code: the code, shown this once; it works for a short time' })),
    emailedTo: Type.Optional(Type.String({ description: 'method email: where the link was sent' })),
  },
  { description: 'What was issued; the link or code is in this answer only' },
);

const EnrolmentPath = Type.Object({ id: Id });

const tags = ['enrolments'];

export async function apiEnrolmentsRoutes(app: FastifyInstance) {
  const { store, now } = app.latchkey;
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const labels = fieldLabels({ method: 'method', templateId: 'templateId', securityKey: 'securityKey' });

  async function enrolmentJson(flow: Flow) {
    const data = enrolmentData(flow);
    return {
      id: flow.id,
      userId: flow.user_id!,
      method: data.method ?? (flow.type === CODE_FLOW ? 'code' : 'link'),
      status: await loadEnrolmentStatus(store, flow, now()),
      securityKey: data.requires === 'security-key',
      issuedAt: iso(flow.created_at)!,
      expiresAt: iso(flow.expires_at)!,
    };
  }

  /** A person's enrolment by its id, or 404 (any other flow is not an enrolment). */
  async function loadEnrolment(request: FastifyRequest, id: string): Promise<Flow> {
    const flow = await store.flows.findById(id);
    if (!flow || !flow.user_id || !ENROLMENT_FLOWS.includes(flow.type)) throw appError('not_found', 'That enrolment was not found.');
    return flow;
  }

  r.post(
    '/api/v1/users/:id/enrolments',
    {
      config: { permission: 'authenticators.issue', fieldLabels: labels },
      schema: {
        operationId: 'issueEnrolment',
        summary: 'Issue an enrolment link, code or email',
        description:
          'As the console issues one: the person’s earlier links and codes stop working. The link or code is in this answer only. A suspended person is refused (`user_suspended`).',
        tags,
        params: UserPath,
        body: IssueBody,
        response: { 201: IssuedJson, ...errorResponses('user_not_found', 'own_account', 'user_suspended', 'mail_unavailable') },
      },
    },
    async (request, reply) => {
      const user = await loadOtherUser(request, request.params.id);
      const { method, templateId, securityKey } = request.body;
      // The console falls back to the default template for one deleted while its form was open; a system naming one that is not there has a mistake to fix.
      if (templateId !== undefined && !(await store.emailTemplates.findById(templateId))) {
        throw appError('validation_failed', 'That email template was not found.', [{ field: 'templateId', message: 'That email template was not found' }]);
      }
      const issued = await issueEnrolment(app, request, user, { method, templateId, requires: securityKey ? 'security-key' : undefined, issuedBy: null });
      const flow = (await store.flows.findById(issued.flowId))!;
      const shown = method === 'code' ? { code: issued.code } : method === 'link' ? { url: issued.url } : { emailedTo: issued.emailedTo };
      return reply.status(201).send({ ...(await enrolmentJson(flow)), ...shown });
    },
  );

  r.get(
    '/api/v1/users/:id/enrolments',
    {
      config: { permission: 'users.view', fieldLabels: labels },
      schema: {
        operationId: 'listUserEnrolments',
        summary: 'A user’s enrolments',
        description: 'The newest 50, newest first (a link opened by redeeming a code shows as that code). Used and expired ones are deleted 30 days after they expire.',
        tags,
        params: UserPath,
        response: { 200: Type.Object({ items: Type.Array(EnrolmentJson) }), ...errorResponses('user_not_found') },
      },
    },
    async (request) => {
      const user = await loadUser(request, request.params.id);
      const flows = await store.flows.listForUser(user.id, ENROLMENT_FLOWS, 50);
      const shown = flows.filter((f) => !(f.type === INVITE_FLOW && enrolmentData(f).parentId));
      return { items: await Promise.all(shown.map(enrolmentJson)) };
    },
  );

  r.get(
    '/api/v1/enrolments/:id',
    {
      config: { permission: 'users.view', fieldLabels: labels },
      schema: {
        operationId: 'getEnrolment',
        summary: 'An enrolment’s status',
        description: 'Pending, Enrolled, Expired or Revoked, as the console shows it live; a redeemed code is as far along as the link it opened.',
        tags,
        params: EnrolmentPath,
        response: { 200: EnrolmentJson, ...errorResponses('not_found') },
      },
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store');
      return enrolmentJson(await loadEnrolment(request, request.params.id));
    },
  );

  r.post(
    '/api/v1/enrolments/:id/revoke',
    {
      config: { permission: 'authenticators.issue', fieldLabels: labels },
      schema: {
        operationId: 'revokeEnrolment',
        summary: 'Revoke an enrolment',
        description: 'The link or code stops working. 409 `enrolment_not_active` when it was already used, revoked or expired.',
        tags,
        params: EnrolmentPath,
        response: { 200: EnrolmentJson, ...errorResponses('not_found', 'own_account', 'enrolment_not_active') },
      },
    },
    async (request) => {
      const flow = await loadEnrolment(request, request.params.id);
      if (flow.user_id === apiTokenOf(request).created_by) throw appError('own_account', OWN_ACCOUNT_MESSAGE);
      if (!(await revokeEnrolment(app, request, flow))) throw appError('enrolment_not_active');
      return enrolmentJson((await store.flows.findById(flow.id))!);
    },
  );
}
