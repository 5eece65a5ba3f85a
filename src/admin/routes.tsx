/**
 * The registration-authority console under /admin. Every route declares the
 * permission it needs (roles.ts) in its config, and the gate (guard.ts) checks
 * it against the route that matched before anything is read or changed; agents
 * never act on their own account here; every change is audited in the
 * transaction that makes it.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static } from 'typebox';
import { audit, auditRefusal, auditRefusals } from '../audit.js';
import { appError, type FieldError } from '../errors.js';
import type { Flow, User } from '../db/schema.js';
import { renderPage } from '../views/render.js';
import { createUser, UserInputError } from '../users/createUser.js';
import { hashNationalId, nationalIdFormat } from '../users/nationalId.js';
import { isRole, type Role } from './roles.js';
import { agentOf, ANY_ROLE, guardConsole } from './guard.js';
import { consoleServicesRoutes } from '../oidc/servicesRoutes.js';
import { checkTemplate, renderTemplate, sampleValues, type PlaceholderValues } from './emailTemplates.js';
import { randomToken, hashToken, safeEqual } from '../crypto.js';
import {
  CODE_FLOW,
  ENROLMENT_FLOWS,
  enrolmentData,
  INVITE_FLOW,
  issueCode,
  issueInvite,
  loadEnrolmentStatus,
  type EnrolmentMethod,
  type RevealTo,
} from '../flows/enrolment/invites.js';
import { formatTime } from '../views/layout.js';
import { auditEventLabels } from '../audit.js';
import {
  ActivityTab,
  AddUserPage,
  AuditPage,
  AuthenticatorsTab,
  ChooseTypePage,
  DetailsTab,
  HomePage,
  IssuedPage,
  IssuePasskeyPage,
  NoRolePage,
  RemoveAuthenticatorPage,
  TemplateEditPage,
  TemplatesPage,
  UsersPage,
  type AdminContext,
  type AuditFilterValues,
  type OutstandingEnrolment,
} from './views.js';

const PAGE_SIZE = 25;
/** Search pages stop here: past it, the agent narrows the search (keeps every query a short index scan). */
const MAX_PAGE = 40;
const AUDIT_PAGE_SIZE = 50;
const CSV_LIMIT = 100_000;

const Id = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' });
const UserParams = Type.Object({ id: Id });
const FlowParams = Type.Object({ id: Id, flowId: Id });
const AuthenticatorParams = Type.Object({ id: Id, authenticatorId: Id });
const TemplateParams = Type.Object({ templateId: Id });
const Csrf = { _csrf: Type.Optional(Type.String({ maxLength: 200 })) };
/**
 * An audit record's id from an "Older events" link: at most 15 digits, so it stays below Number.MAX_SAFE_INTEGER
 * and PostgreSQL's bigint (a 20-digit one reached the query there and answered 500).
 */
const RecordId = Type.String({ minLength: 1, maxLength: 15, pattern: '^[0-9]+$' });
const Flash = Type.Object({ done: Type.Optional(Type.String({ maxLength: 32 })), before: Type.Optional(RecordId) });

const SearchQuery = Type.Object({
  q: Type.Optional(Type.String({ maxLength: 254 })),
  status: Type.Optional(Type.Union([Type.Literal(''), Type.Literal('pending'), Type.Literal('enrolled'), Type.Literal('suspended')])),
  // Clamped to 1…MAX_PAGE by the route; six digits keep Number() exact.
  page: Type.Optional(Type.String({ maxLength: 6, pattern: '^[0-9]*$' })),
});
const AddUserBody = Type.Object({
  ...Csrf,
  name: Type.Optional(Type.String({ maxLength: 2000 })),
  email: Type.Optional(Type.String({ maxLength: 2000 })),
  nationalId: Type.Optional(Type.String({ maxLength: 200 })),
});
const NationalIdBody = Type.Object({ ...Csrf, nationalId: Type.Optional(Type.String({ maxLength: 200 })) });
const StatusBody = Type.Object({ ...Csrf, action: Type.Union([Type.Literal('suspend'), Type.Literal('reactivate'), Type.Literal('unlock')]) });
const RolesBody = Type.Object({
  ...Csrf,
  roles: Type.Optional(Type.Union([Type.String({ maxLength: 64 }), Type.Array(Type.String({ maxLength: 64 }), { maxItems: 8 })])),
});
const ChooseTypeBody = Type.Object({ ...Csrf, type: Type.Optional(Type.String({ maxLength: 32 })) });
const IssueBody = Type.Object({
  ...Csrf,
  method: Type.Union([Type.Literal('link'), Type.Literal('code'), Type.Literal('email')]),
  template: Type.Optional(Id),
});
const EmailLinkBody = Type.Object({ ...Csrf, token: Type.String({ maxLength: 100 }), template: Type.Optional(Id) });
const RemoveBody = Type.Object({ ...Csrf, confirm: Type.Optional(Type.String({ maxLength: 16 })) });
const AuditQuery = Type.Object({
  event: Type.Optional(Type.String({ maxLength: 64 })),
  actor: Type.Optional(Type.String({ maxLength: 254 })),
  subject: Type.Optional(Type.String({ maxLength: 254 })),
  from: Type.Optional(Type.String({ maxLength: 10 })),
  to: Type.Optional(Type.String({ maxLength: 10 })),
  before: Type.Optional(RecordId),
});
const TemplateBody = Type.Object({
  ...Csrf,
  name: Type.Optional(Type.String({ maxLength: 2000 })),
  subject: Type.Optional(Type.String({ maxLength: 2000 })),
  body: Type.Optional(Type.String({ maxLength: 20000 })),
  action: Type.Optional(Type.Union([Type.Literal('save'), Type.Literal('preview')])),
});

const flashes: Record<string, (user?: User) => string> = {
  added: (u) => `${u?.display_name} has been added. They are Pending until they set up a passkey.`,
  removed: (u) => `The passkey has been removed from ${u?.display_name}’s profile.`,
  'removed-unnotified': (u) => `The passkey has been removed from ${u?.display_name}’s profile. The email telling them could not be sent.`,
  revoked: () => 'The link or code has been revoked. It can no longer be used.',
  'not-revoked': () => 'That link or code was already used, revoked or expired.',
  'national-id': () => 'The identifier has been saved.',
  roles: () => 'Roles saved.',
  suspended: (u) => `${u?.display_name} has been suspended and signed out everywhere.`,
  reactivated: (u) => `${u?.display_name} can sign in again.`,
  unlocked: (u) => `${u?.display_name}'s failed sign-ins have been cleared: they can sign in again.`,
  'template-saved': () => 'Template saved.',
  'template-deleted': () => 'Template deleted.',
};

const html = (reply: FastifyReply, body: string, status = 200) => reply.status(status).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(body);

export async function adminRoutes(app: FastifyInstance) {
  const { config, store, now, secret, mailer, secretBox } = app.latchkey;
  const nationalId = nationalIdFormat(config);

  // First, before any route: every route below declares its permission, and the gate checks it (guard.ts).
  guardConsole(app, async (request, reply) => {
    // A page, not an error: so the refusal is recorded here rather than by auditRefusals below.
    await auditRefusal(app, request, { event: 'console.refused', outcome: 'refused', reason: 'no_console_role' });
    return html(reply, renderPage(<NoRolePage config={config} csrfToken={request.csrfToken} user={request.auth!.user} />), 403);
  });
  // Refusals and failures are audited too (rate-limited), with the person the request was about.
  auditRefusals(app, {
    area: 'console',
    subjectOf: async (request) => {
      const id = (request.params as { id?: unknown }).id;
      return typeof id === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(id) ? (await store.users.findById(id))?.id : null;
    },
  });

  const ctx = (request: FastifyRequest): AdminContext => ({ config, csrfToken: request.csrfToken, agent: agentOf(request) });

  async function loadUser(id: string): Promise<User> {
    const user = await store.users.findById(id);
    if (!user) throw appError('user_not_found');
    return user;
  }

  /** The person being changed, who must not be the agent changing them. */
  async function loadOtherUser(request: FastifyRequest, id: string): Promise<User> {
    const user = await loadUser(id);
    if (user.id === agentOf(request).user.id) throw appError('own_account');
    return user;
  }

  const flashFor = (done: string | undefined, user?: User) => (done && flashes[done] ? flashes[done](user) : null);

  // ---------------------------------------------------------------- home and search

  app.get<{ Querystring: Static<typeof Flash> }>('/admin', { config: { permission: ANY_ROLE }, schema: { querystring: Flash } }, async (request, reply) =>
    html(reply, renderPage(<HomePage {...ctx(request)} flash={flashFor(request.query.done)} />)),
  );

  app.get<{ Querystring: Static<typeof SearchQuery> }>('/admin/users', { config: { permission: 'users.view' }, schema: { querystring: SearchQuery } }, async (request, reply) => {
    const query = (request.query.q ?? '').trim();
    const status = request.query.status || undefined;
    const page = Math.min(Math.max(Number(request.query.page || '1') || 1, 1), MAX_PAGE);
    const rows = await store.users.search({ query, status, offset: (page - 1) * PAGE_SIZE, limit: PAGE_SIZE });
    const users = rows.slice(0, PAGE_SIZE);
    return html(
      reply,
      renderPage(<UsersPage {...ctx(request)} query={query} status={status ?? ''} users={users} pageNumber={page} hasNext={rows.length > PAGE_SIZE} lastPage={page === MAX_PAGE} />),
    );
  });

  // ---------------------------------------------------------------- add a user

  app.get('/admin/users/new', { config: { permission: 'users.add' } }, async (request, reply) => {
    return html(reply, renderPage(<AddUserPage {...ctx(request)} values={{ name: '', email: '', nationalId: '' }} errors={[]} nationalId={nationalId} />));
  });

  app.post<{ Body: Static<typeof AddUserBody> }>('/admin/users/new', { config: { permission: 'users.add' }, schema: { body: AddUserBody } }, async (request, reply) => {
    const values = { name: (request.body.name ?? '').trim(), email: (request.body.email ?? '').trim(), nationalId: request.body.nationalId ?? '' };
    const errors: FieldError[] = [];
    if (!values.name) errors.push({ field: 'name', message: 'Enter the person’s full name' });
    else if (values.name.length > 100) errors.push({ field: 'name', message: 'The name must be 100 characters or fewer' });
    if (!values.email) errors.push({ field: 'email', message: 'Enter an email address' });
    else if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(values.email) || values.email.length > 254) {
      errors.push({ field: 'email', message: 'Enter an email address in the correct format, like name@example.com' });
    }
    const normalisedId = values.nationalId.trim() ? nationalId.normalise(values.nationalId) : '';
    const idProblem = normalisedId ? nationalId.check(normalisedId) : undefined;
    if (idProblem) errors.push({ field: 'nationalId', message: idProblem });
    let existing: User | undefined;
    if (!errors.length) {
      existing = await store.users.findByEmail(values.email);
      if (existing) errors.push({ field: 'email', message: 'A user with this email address already exists' });
    }
    if (errors.length) {
      return html(reply, renderPage(<AddUserPage {...ctx(request)} values={values} errors={errors} nationalId={nationalId} existing={existing} />), 400);
    }
    let user: User;
    try {
      user = await store.transaction(async (tx) => {
        const created = await createUser(tx, { email: values.email, displayName: values.name }, now());
        if (normalisedId) await tx.users.setNationalIdHash(created.id, hashNationalId(secret, normalisedId), now());
        await audit(app, request, { event: 'user.created', subjectUserId: created.id, detail: { nationalId: !!normalisedId } }, tx);
        return created;
      });
    } catch (err) {
      if (!(err instanceof UserInputError)) throw err;
      const fields = [{ field: 'email', message: 'A user with this email address already exists' }];
      return html(reply, renderPage(<AddUserPage {...ctx(request)} values={values} errors={fields} nationalId={nationalId} />), 409);
    }
    return reply.redirect(`/admin/users/${user.id}?done=added`, 303);
  });

  // ---------------------------------------------------------------- profile tabs

  app.get<{ Params: Static<typeof UserParams>; Querystring: Static<typeof Flash> }>(
    '/admin/users/:id',
    { config: { permission: 'users.view' }, schema: { params: UserParams, querystring: Flash } },
    async (request, reply) => {
      const user = await loadUser(request.params.id);
      const roles = await store.roles.listForUser(user.id);
      return html(reply, renderPage(<DetailsTab {...ctx(request)} user={user} roles={roles} nationalId={nationalId} flash={flashFor(request.query.done, user)} />));
    },
  );

  app.post<{ Params: Static<typeof UserParams>; Body: Static<typeof NationalIdBody> }>(
    '/admin/users/:id/national-id',
    { config: { permission: 'users.edit' }, schema: { params: UserParams, body: NationalIdBody } },
    async (request, reply) => {
      const user = await loadOtherUser(request, request.params.id);
      const normalised = nationalId.normalise(request.body.nationalId ?? '');
      const problem = normalised ? nationalId.check(normalised) : `Enter the ${nationalId.label}`;
      if (problem) {
        const roles = await store.roles.listForUser(user.id);
        const errors = [{ field: 'nationalId', message: problem }];
        return html(reply, renderPage(<DetailsTab {...ctx(request)} user={user} roles={roles} nationalId={nationalId} errors={errors} error={problem} />), 400);
      }
      await store.transaction(async (tx) => {
        await tx.users.setNationalIdHash(user.id, hashNationalId(secret, normalised), now());
        await audit(app, request, { event: 'user.national_id_set', subjectUserId: user.id, detail: { replaced: !!user.national_id_hash } }, tx);
      });
      return reply.redirect(`/admin/users/${user.id}?done=national-id`, 303);
    },
  );

  app.post<{ Params: Static<typeof UserParams>; Body: Static<typeof StatusBody> }>(
    '/admin/users/:id/status',
    { config: { permission: 'users.edit' }, schema: { params: UserParams, body: StatusBody } },
    async (request, reply) => {
      const user = await loadOtherUser(request, request.params.id);
      if (request.body.action === 'unlock') {
        await store.transaction(async (tx) => {
          await tx.users.resetFailedSignins(user.id);
          await audit(app, request, { event: 'user.unlocked', subjectUserId: user.id, detail: { failedSignins: user.failed_signins } }, tx);
        });
        return reply.redirect(`/admin/users/${user.id}?done=unlocked`, 303);
      }
      const suspend = request.body.action === 'suspend';
      await store.transaction(async (tx) => {
        if (suspend) {
          await tx.users.setStatus(user.id, 'suspended', now());
          await tx.sessions.deleteForUser(user.id);
          await tx.flows.revokeActiveForUser(user.id, ENROLMENT_FLOWS, now());
        } else if (user.status === 'suspended') {
          const passkeys = await tx.authenticators.countForUser(user.id);
          await tx.users.setStatus(user.id, passkeys ? 'enrolled' : 'pending', now());
        }
        await audit(app, request, { event: suspend ? 'user.suspended' : 'user.reactivated', subjectUserId: user.id }, tx);
      });
      return reply.redirect(`/admin/users/${user.id}?done=${suspend ? 'suspended' : 'reactivated'}`, 303);
    },
  );

  app.post<{ Params: Static<typeof UserParams>; Body: Static<typeof RolesBody> }>(
    '/admin/users/:id/roles',
    { config: { permission: 'roles.manage' }, schema: { params: UserParams, body: RolesBody } },
    async (request, reply) => {
      const user = await loadOtherUser(request, request.params.id);
      const raw = request.body.roles === undefined ? [] : Array.isArray(request.body.roles) ? request.body.roles : [request.body.roles];
      const unknown = raw.find((r) => !isRole(r));
      if (unknown !== undefined) throw appError('validation_failed', `"${unknown.slice(0, 64)}" is not a role.`, [{ field: 'roles', message: 'Choose roles from the list' }]);
      const roles = [...new Set(raw)] as Role[];
      await store.transaction(async (tx) => {
        const { added, removed } = await tx.roles.set(user.id, roles, agentOf(request).user.id, now());
        if (added.length || removed.length) await audit(app, request, { event: 'roles.changed', subjectUserId: user.id, detail: { added, removed } }, tx);
      });
      return reply.redirect(`/admin/users/${user.id}?done=roles`, 303);
    },
  );

  async function authenticatorsTab(request: FastifyRequest, reply: FastifyReply, user: User, extra: { flash?: string | null; error?: string | null; status?: number }) {
    const [authenticators, flows] = await Promise.all([store.authenticators.listForUser(user.id), store.flows.listForUser(user.id, ENROLMENT_FLOWS, 20)]);
    // A link a redeemed code opened is shown as that code.
    const shown = flows.filter((f) => !(f.type === INVITE_FLOW && enrolmentData(f).parentId));
    const people = new Set<string>();
    for (const a of authenticators) if (a.issued_by) people.add(a.issued_by);
    for (const f of shown) {
      const by = enrolmentData(f).issuedBy;
      if (by) people.add(by);
    }
    const issuers = new Map<string, string>();
    for (const id of people) {
      const u = await store.users.findById(id);
      if (u) issuers.set(id, u.display_name);
    }
    const t = now();
    const enrolments: OutstandingEnrolment[] = [];
    for (const flow of shown) {
      const data = enrolmentData(flow);
      enrolments.push({
        flow,
        status: await loadEnrolmentStatus(store, flow, t),
        method: data.method ?? (flow.type === CODE_FLOW ? 'code' : 'link'),
        issuedBy: data.issuedBy ? (issuers.get(data.issuedBy) ?? 'A former agent') : data.method === 'cli' ? 'Command line' : 'Latchkey',
      });
    }
    return html(
      reply,
      renderPage(<AuthenticatorsTab {...ctx(request)} user={user} authenticators={authenticators} issuers={issuers} enrolments={enrolments} flash={extra.flash} error={extra.error} />),
      extra.status ?? 200,
    );
  }

  app.get<{ Params: Static<typeof UserParams>; Querystring: Static<typeof Flash> }>(
    '/admin/users/:id/authenticators',
    { config: { permission: 'users.view' }, schema: { params: UserParams, querystring: Flash } },
    async (request, reply) => {
      const user = await loadUser(request.params.id);
      return authenticatorsTab(request, reply, user, { flash: flashFor(request.query.done, user) });
    },
  );

  app.get<{ Params: Static<typeof UserParams>; Querystring: Static<typeof Flash> }>(
    '/admin/users/:id/activity',
    { config: { permission: 'users.view' }, schema: { params: UserParams, querystring: Flash } },
    async (request, reply) => {
      const user = await loadUser(request.params.id);
      const before = request.query.before ? Number(request.query.before) : undefined;
      const rows = await store.audit.search({ subjectUserId: user.id, beforeId: before }, AUDIT_PAGE_SIZE + 1);
      const events = rows.slice(0, AUDIT_PAGE_SIZE);
      const nextBefore = rows.length > AUDIT_PAGE_SIZE ? events[events.length - 1]!.id : undefined;
      return html(reply, renderPage(<ActivityTab {...ctx(request)} user={user} events={events} nextBefore={nextBefore} />));
    },
  );

  // ---------------------------------------------------------------- issue a passkey

  app.get<{ Params: Static<typeof UserParams> }>('/admin/users/:id/issue', { config: { permission: 'authenticators.issue' }, schema: { params: UserParams } }, async (request, reply) => {
    const user = await loadOtherUser(request, request.params.id);
    return html(reply, renderPage(<ChooseTypePage {...ctx(request)} user={user} />));
  });

  app.post<{ Params: Static<typeof UserParams>; Body: Static<typeof ChooseTypeBody> }>(
    '/admin/users/:id/issue',
    { config: { permission: 'authenticators.issue' }, schema: { params: UserParams, body: ChooseTypeBody } },
    async (request, reply) => {
      const user = await loadOtherUser(request, request.params.id);
      if (request.body.type !== 'passkey') return html(reply, renderPage(<ChooseTypePage {...ctx(request)} user={user} error="Select an authenticator type" />), 400);
      return reply.redirect(`/admin/users/${user.id}/issue/passkey`, 303);
    },
  );

  app.get<{ Params: Static<typeof UserParams> }>('/admin/users/:id/issue/passkey', { config: { permission: 'authenticators.issue' }, schema: { params: UserParams } }, async (request, reply) => {
    const user = await loadOtherUser(request, request.params.id);
    if (user.status === 'suspended') throw appError('user_suspended', `${user.display_name} is suspended. Reactivate them before issuing an authenticator.`);
    return html(reply, renderPage(<IssuePasskeyPage {...ctx(request)} user={user} templates={await store.emailTemplates.list()} />));
  });

  /** Send the enrolment email for a link; the caller revokes the link when this throws. */
  async function sendEnrolmentEmail(user: User, link: string, expiresAt: number, templateId: string | undefined): Promise<string> {
    const template = (templateId && (await store.emailTemplates.findById(templateId))) || (await store.emailTemplates.findDefault());
    if (!template) throw appError('validation_failed', 'Choose an email template.');
    const values: PlaceholderValues = { name: user.display_name, link, expiry: formatTime(expiresAt), organisation: config.organisation };
    await mailer.send({ to: user.email, subject: renderTemplate(template.subject, values), text: renderTemplate(template.body, values) });
    return template.id;
  }

  /** Who sees what is being issued, once (see takeReveal): sealed into the flow as it is inserted. */
  const revealTo = (request: FastifyRequest): RevealTo => ({
    agentId: agentOf(request).user.id,
    bindingHash: request.bindingHash,
    seal: (value, flowId) => secretBox.seal(value, `enrolment-reveal:${flowId}`),
  });

  /**
   * The issued link or code, once: for the agent who issued it, in the browser they issued it from. Taking it removes
   * it in one conditional update, so of two loads of the page (a reload, a second tab) only one shows it.
   */
  async function takeReveal(request: FastifyRequest, user: User, flowId: string): Promise<{ flow: Flow; value?: string }> {
    for (;;) {
      const flow = await store.flows.findById(flowId);
      if (!flow || flow.user_id !== user.id || !ENROLMENT_FLOWS.includes(flow.type)) throw appError('not_found', 'That link or code was not found.');
      const data = enrolmentData(flow);
      const reveal = data.reveal;
      if (!reveal || reveal.agentId !== agentOf(request).user.id || reveal.bindingHash !== request.bindingHash) return { flow };
      const { reveal: _taken, ...rest } = data;
      const taken = { ...flow, data: JSON.stringify(rest) };
      // Lost to a concurrent change of the data (a load in another tab, the code being redeemed): read it again.
      if (!(await store.flows.swapData(flow.id, flow.data, taken.data))) continue;
      // A link or code that can no longer be used is not worth showing.
      const usable = flow.state === 'active' && flow.expires_at > now();
      return { flow: taken, value: usable ? secretBox.open(reveal.sealed, `enrolment-reveal:${flow.id}`) : undefined };
    }
  }

  // Post/redirect/get: issuing answers 303 to the page of what was issued, so a reload of that page issues nothing
  // (re-posting issued a new link and revoked the one already sent).
  app.post<{ Params: Static<typeof UserParams>; Body: Static<typeof IssueBody> }>(
    '/admin/users/:id/enrolments',
    { config: { permission: 'authenticators.issue' }, schema: { params: UserParams, body: IssueBody } },
    async (request, reply) => {
      const user = await loadOtherUser(request, request.params.id);
      if (user.status === 'suspended') throw appError('user_suspended', `${user.display_name} is suspended. Reactivate them before issuing an authenticator.`);
      const agentId = agentOf(request).user.id;
      const method = request.body.method;
      const issuedPage = (flowId: string, done?: 'emailed') => `/admin/users/${user.id}/enrolments/${flowId}${done ? `?done=${done}` : ''}`;
      if (method === 'code') {
        // The earlier link's revocation, the new code sealed for its one showing and the audit record: one transaction.
        const issued = await issueCode(store, config, secret, user, now(), agentId, {
          revealTo: revealTo(request),
          alongside: (tx, flowId) => audit(app, request, { event: 'enrolment.code_issued', subjectUserId: user.id, detail: { flowId } }, tx),
        });
        return reply.redirect(issuedPage(issued.flowId), 303);
      }
      const issueOptions = { issuedBy: agentId, method, lifetimeSeconds: config.agentLinkSeconds, templateId: request.body.template };
      if (method === 'email') {
        const issued = await issueInvite(store, config, user, now(), issueOptions);
        try {
          const templateId = await sendEnrolmentEmail(user, issued.url, issued.expiresAt, request.body.template);
          await audit(app, request, { event: 'enrolment.emailed', subjectUserId: user.id, detail: { flowId: issued.flowId, templateId } });
        } catch (err) {
          // Nothing half-done: a link nobody received must not stay usable.
          await store.flows.revoke(issued.flowId, now());
          throw err;
        }
        return reply.redirect(issuedPage(issued.flowId), 303);
      }
      // As for a code: revocation, the sealed link and the audit record land together or not at all.
      const issued = await issueInvite(store, config, user, now(), {
        ...issueOptions,
        revealTo: revealTo(request),
        alongside: (tx, flowId) => audit(app, request, { event: 'enrolment.link_issued', subjectUserId: user.id, detail: { flowId } }, tx),
      });
      return reply.redirect(issuedPage(issued.flowId), 303);
    },
  );

  /** The page of one issued link, code or enrolment email: what was issued (once), its live status, Revoke. */
  app.get<{ Params: Static<typeof FlowParams>; Querystring: Static<typeof Flash> }>(
    '/admin/users/:id/enrolments/:flowId',
    { config: { permission: 'authenticators.issue' }, schema: { params: FlowParams, querystring: Flash } },
    async (request, reply) => {
      const user = await loadOtherUser(request, request.params.id);
      const { flow, value } = await takeReveal(request, user, request.params.flowId);
      const data = enrolmentData(flow);
      const emailed = data.method === 'email' || request.query.done === 'emailed';
      const method: EnrolmentMethod = flow.type === CODE_FLOW ? 'code' : emailed ? 'email' : 'link';
      const templates = await store.emailTemplates.list();
      const status = await loadEnrolmentStatus(store, flow, now());
      const shown =
        method === 'code' ? { code: value } : method === 'link' ? { link: value && `${config.origin}/enrol/${value}`, token: value } : { emailedTo: user.email };
      return html(reply, renderPage(<IssuedPage {...ctx(request)} user={user} flow={flow} method={method} status={status} {...shown} templates={templates} serverNow={now()} />));
    },
  );

  // "Send by email" beside a generated link: the agent's page holds the token, the server only its hash.
  app.post<{ Params: Static<typeof FlowParams>; Body: Static<typeof EmailLinkBody> }>(
    '/admin/users/:id/enrolments/:flowId/email',
    { config: { permission: 'authenticators.issue' }, schema: { params: FlowParams, body: EmailLinkBody } },
    async (request, reply) => {
      const user = await loadOtherUser(request, request.params.id);
      const flow = await store.flows.findById(request.params.flowId);
      if (!flow || flow.user_id !== user.id || flow.type !== INVITE_FLOW || !safeEqual(flow.lookup, hashToken(request.body.token))) throw appError('not_found', 'That link was not found.');
      if (flow.state !== 'active' || flow.expires_at <= now()) throw appError('invite_revoked', 'That link can no longer be used: generate a new one.');
      const link = `${config.origin}/enrol/${request.body.token}`;
      const templateId = await sendEnrolmentEmail(user, link, flow.expires_at, request.body.template);
      await audit(app, request, { event: 'enrolment.emailed', subjectUserId: user.id, detail: { flowId: flow.id, templateId } });
      return reply.redirect(`/admin/users/${user.id}/enrolments/${flow.id}?done=emailed`, 303);
    },
  );

  app.get<{ Params: { flowId: string } }>(
    '/admin/enrolments/:flowId/status',
    { config: { permission: 'users.view' }, schema: { params: Type.Object({ flowId: Id }) } },
    async (request, reply) => {
      const flow = await store.flows.findById(request.params.flowId);
      if (!flow || !flow.user_id || !ENROLMENT_FLOWS.includes(flow.type)) throw appError('not_found');
      const status = await loadEnrolmentStatus(store, flow, now());
      reply.header('cache-control', 'no-store');
      // redeemed: the person entered the code and is setting up a passkey, so the code's 60 seconds no longer count.
      return { status, expiresAt: flow.expires_at, redeemed: flow.type === CODE_FLOW && flow.state === 'consumed' };
    },
  );

  app.post<{ Params: Static<typeof FlowParams>; Body: typeof Csrf }>(
    '/admin/users/:id/enrolments/:flowId/revoke',
    { config: { permission: 'authenticators.issue' }, schema: { params: FlowParams, body: Type.Object(Csrf) } },
    async (request, reply) => {
      const user = await loadOtherUser(request, request.params.id);
      const flow = await store.flows.findById(request.params.flowId);
      if (!flow || flow.user_id !== user.id || !ENROLMENT_FLOWS.includes(flow.type)) throw appError('not_found', 'That link or code was not found.');
      const revoked = await store.transaction(async (tx) => {
        if (!(await tx.flows.revoke(flow.id, now()))) return false;
        await audit(app, request, { event: 'enrolment.revoked', subjectUserId: user.id, detail: { flowId: flow.id } }, tx);
        return true;
      });
      return reply.redirect(`/admin/users/${user.id}/authenticators?done=${revoked ? 'revoked' : 'not-revoked'}`, 303);
    },
  );

  // ---------------------------------------------------------------- remove an authenticator (seed 000)

  async function loadAuthenticator(request: FastifyRequest<{ Params: Static<typeof AuthenticatorParams> }>) {
    const user = await loadOtherUser(request, request.params.id);
    const authenticator = await store.authenticators.findForUser(user.id, request.params.authenticatorId);
    if (!authenticator) throw appError('not_found', 'That authenticator was not found. It may already have been removed.');
    return { user, authenticator };
  }

  app.get<{ Params: Static<typeof AuthenticatorParams> }>(
    '/admin/users/:id/authenticators/:authenticatorId/remove',
    { config: { permission: 'authenticators.remove' }, schema: { params: AuthenticatorParams } },
    async (request, reply) => {
      const { user, authenticator } = await loadAuthenticator(request);
      return html(reply, renderPage(<RemoveAuthenticatorPage {...ctx(request)} user={user} authenticator={authenticator} />));
    },
  );

  app.post<{ Params: Static<typeof AuthenticatorParams>; Body: Static<typeof RemoveBody> }>(
    '/admin/users/:id/authenticators/:authenticatorId/remove',
    { config: { permission: 'authenticators.remove' }, schema: { params: AuthenticatorParams, body: RemoveBody } },
    async (request, reply) => {
      const { user, authenticator } = await loadAuthenticator(request);
      if (request.body.confirm !== 'yes') {
        const page = <RemoveAuthenticatorPage {...ctx(request)} user={user} authenticator={authenticator} error="Select the box to confirm you want to remove the passkey" />;
        return html(reply, renderPage(page), 400);
      }
      const removed = await store.transaction(async (tx) => {
        if (!(await tx.authenticators.remove(user.id, authenticator.id))) return false;
        const ended = await tx.sessions.deleteForAuthenticator(user.id, authenticator.id);
        // Pending means no passkey (seed 003): a person left without one needs a new link or code.
        if (user.status === 'enrolled' && (await tx.authenticators.countForUser(user.id)) === 0) await tx.users.setStatus(user.id, 'pending', now());
        await audit(
          app,
          request,
          { event: 'authenticator.removed', subjectUserId: user.id, authenticatorId: authenticator.id, detail: { name: authenticator.name, sessionsEnded: ended } },
          tx,
        );
        return true;
      });
      if (!removed) throw appError('not_found', 'That authenticator was not found. It may already have been removed.');
      let notified = true;
      try {
        await mailer.send({
          to: user.email,
          subject: `A passkey was removed from your ${config.organisation} account`,
          text: `Hello ${user.display_name},

A registration authority agent removed the passkey "${authenticator.name}" from your ${config.organisation} account at ${formatTime(now())}. You have been signed out wherever you signed in with it.

If you did not ask for this, contact your registration authority or IT service desk.
`,
        });
      } catch (err) {
        notified = false;
        request.log.warn({ code: (err as { code?: string }).code }, 'removal notice not sent');
      }
      return reply.redirect(`/admin/users/${user.id}/authenticators?done=${notified ? 'removed' : 'removed-unnotified'}`, 303);
    },
  );

  // ---------------------------------------------------------------- audit log

  async function auditFilter(request: FastifyRequest<{ Querystring: Static<typeof AuditQuery> }>) {
    const q = request.query;
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
    const person = async (field: 'actor' | 'subject', email: string) => {
      if (!email) return undefined;
      const u = await store.users.findByEmail(email);
      // No match is an empty result, not an error: the person may have been removed.
      return u?.id ?? `none:${randomToken(4)}`;
    };
    const filter = {
      event: values.event || undefined,
      actorUserId: await person('actor', values.actor),
      subjectUserId: await person('subject', values.subject),
      from,
      to: toStart === undefined ? undefined : toStart + 24 * 3600 * 1000,
      beforeId: q.before ? Number(q.before) : undefined,
    };
    return { values, errors, filter };
  }

  app.get<{ Querystring: Static<typeof AuditQuery> }>('/admin/audit', { config: { permission: 'audit.read' }, schema: { querystring: AuditQuery } }, async (request, reply) => {
    const { values, errors, filter } = await auditFilter(request);
    const rows = errors.length ? [] : await store.audit.search(filter, AUDIT_PAGE_SIZE + 1);
    const events = rows.slice(0, AUDIT_PAGE_SIZE);
    const nextBefore = rows.length > AUDIT_PAGE_SIZE ? events[events.length - 1]!.id : undefined;
    const page = <AuditPage {...ctx(request)} filter={values} events={events} nextBefore={nextBefore} errors={errors} events_known={Object.keys(auditEventLabels).sort()} />;
    return html(reply, renderPage(page), errors.length ? 400 : 200);
  });

  app.get<{ Querystring: Static<typeof AuditQuery> }>('/admin/audit.csv', { config: { permission: 'audit.read' }, schema: { querystring: AuditQuery } }, async (request, reply) => {
    const { errors, filter } = await auditFilter(request);
    if (errors.length) throw appError('validation_failed', errors[0]!.message, errors);
    const rows = await store.audit.search(filter, CSV_LIMIT);
    const header = ['time', 'event', 'outcome', 'actor_email', 'actor_name', 'subject_email', 'subject_name', 'authenticator_id', 'ip', 'user_agent', 'detail'];
    const lines = [header.join(',')];
    for (const r of rows) {
      lines.push(
        [new Date(r.at).toISOString(), r.event, r.outcome, r.actor_email, r.actor_name, r.subject_email, r.subject_name, r.authenticator_id, r.ip, r.user_agent, r.detail]
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

  // ---------------------------------------------------------------- email templates

  app.get<{ Querystring: Static<typeof Flash> }>('/admin/templates', { config: { permission: 'templates.manage' }, schema: { querystring: Flash } }, async (request, reply) => {
    return html(reply, renderPage(<TemplatesPage {...ctx(request)} templates={await store.emailTemplates.list()} flash={flashFor(request.query.done)} />));
  });

  app.get('/admin/templates/new', { config: { permission: 'templates.manage' } }, async (request, reply) => {
    const fallback = await store.emailTemplates.findDefault();
    const values = { name: '', subject: fallback?.subject ?? '', body: fallback?.body ?? '' };
    return html(reply, renderPage(<TemplateEditPage {...ctx(request)} values={values} errors={[]} />));
  });

  app.get<{ Params: Static<typeof TemplateParams> }>('/admin/templates/:templateId', { config: { permission: 'templates.manage' }, schema: { params: TemplateParams } }, async (request, reply) => {
    const template = await store.emailTemplates.findById(request.params.templateId);
    if (!template) throw appError('not_found', 'That template was not found.');
    return html(reply, renderPage(<TemplateEditPage {...ctx(request)} template={template} values={template} errors={[]} />));
  });

  async function saveTemplate(request: FastifyRequest<{ Body: Static<typeof TemplateBody> }>, reply: FastifyReply, templateId?: string) {
    const template = templateId ? await store.emailTemplates.findById(templateId) : undefined;
    if (templateId && !template) throw appError('not_found', 'That template was not found.');
    const values = { name: (request.body.name ?? '').trim(), subject: (request.body.subject ?? '').trim(), body: (request.body.body ?? '').replace(/\r\n/g, '\n') };
    const errors = checkTemplate(values);
    if (errors.length || request.body.action === 'preview') {
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

  app.post<{ Body: Static<typeof TemplateBody> }>('/admin/templates/new', { config: { permission: 'templates.manage' }, schema: { body: TemplateBody } }, (request, reply) => saveTemplate(request, reply));
  app.post<{ Params: Static<typeof TemplateParams>; Body: Static<typeof TemplateBody> }>(
    '/admin/templates/:templateId',
    { config: { permission: 'templates.manage' }, schema: { params: TemplateParams, body: TemplateBody } },
    (request, reply) => saveTemplate(request, reply, request.params.templateId),
  );

  app.post<{ Params: Static<typeof TemplateParams>; Body: typeof Csrf }>(
    '/admin/templates/:templateId/delete',
    { config: { permission: 'templates.manage' }, schema: { params: TemplateParams, body: Type.Object(Csrf) } },
    async (request, reply) => {
      const template = await store.emailTemplates.findById(request.params.templateId);
      if (!template) throw appError('not_found', 'That template was not found.');
      if (template.is_default) throw appError('template_default', undefined);
      await store.transaction(async (tx) => {
        await tx.emailTemplates.delete(template.id);
        await audit(app, request, { event: 'template.deleted', detail: { name: template.name } }, tx);
      });
      return reply.redirect('/admin/templates?done=template-deleted', 303);
    },
  );

  // Registered here, inside the console, so the gate and its rule cover it too.
  await app.register(consoleServicesRoutes);
}

/** One CSV cell (RFC 4180), defused against formula injection in spreadsheets. */
export function csvCell(value: string | number | null | undefined): string {
  let s = value === null || value === undefined ? '' : String(value);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export type { EnrolmentMethod };
