/** The console's people: the home page, search, adding a person, the Details and Activity tabs, suspend/reactivate/unlock. */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { audit } from '../../audit.js';
import type { User } from '../../db/schema.js';
import { html } from '../../http/replies.js';
import { Csrf } from '../../http/schemas.js';
import { renderPage } from '../../views/render.js';
import { UserInputError } from '../../users/createUser.js';
import { addUser, checkNewUser, USER_EXISTS_MESSAGE } from '../../users/addUser.js';
import { hashNationalId, nationalIdFormat } from '../../users/nationalId.js';
import { reactivateUser, suspendUser } from '../../users/suspendUser.js';
import { ANY_ROLE } from '../guard.js';
import { ActivityTab, AddUserPage, DetailsTab, HomePage, UsersPage } from '../views.js';
import { adminContext as ctx, AUDIT_PAGE_SIZE, Flash, flashFor, loadOtherUser, loadUser, UserParams } from './shared.js';

const PAGE_SIZE = 25;
/** Search pages stop here: past it, the agent narrows the search (keeps every query a short index scan). */
const MAX_PAGE = 40;

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

export async function consoleUsersRoutes(app: FastifyInstance) {
  const { config, store, now, secret } = app.latchkey;
  const nationalId = nationalIdFormat(config);
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  // ---------------------------------------------------------------- home and search

  r.get('/admin', { config: { permission: ANY_ROLE }, schema: { querystring: Flash } }, async (request, reply) =>
    html(reply, renderPage(<HomePage {...ctx(request)} flash={flashFor(request.query.done)} />)),
  );

  r.get('/admin/users', { config: { permission: 'users.view' }, schema: { querystring: SearchQuery } }, async (request, reply) => {
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

  r.get('/admin/users/new', { config: { permission: 'users.add' } }, async (request, reply) => {
    return html(reply, renderPage(<AddUserPage {...ctx(request)} values={{ name: '', email: '', nationalId: '' }} errors={[]} nationalId={nationalId} />));
  });

  r.post('/admin/users/new', { config: { permission: 'users.add' }, schema: { body: AddUserBody } }, async (request, reply) => {
    const fields = { name: request.body.name ?? '', email: request.body.email ?? '', nationalId: request.body.nationalId ?? '' };
    const { values: checked, errors } = checkNewUser(nationalId, fields);
    const values = { name: checked.name, email: checked.email, nationalId: fields.nationalId };
    let existing: User | undefined;
    if (!errors.length) {
      existing = await store.users.findByEmail(values.email);
      if (existing) errors.push({ field: 'email', message: USER_EXISTS_MESSAGE });
    }
    if (errors.length) {
      return html(reply, renderPage(<AddUserPage {...ctx(request)} values={values} errors={errors} nationalId={nationalId} existing={existing} />), 400);
    }
    let user: User;
    try {
      user = await addUser(app, request, checked, 'console');
    } catch (err) {
      if (!(err instanceof UserInputError)) throw err;
      const fields = [{ field: 'email', message: USER_EXISTS_MESSAGE }];
      return html(reply, renderPage(<AddUserPage {...ctx(request)} values={values} errors={fields} nationalId={nationalId} />), 409);
    }
    return reply.redirect(`/admin/users/${user.id}?done=added`, 303);
  });

  // ---------------------------------------------------------------- profile: Details and Activity tabs

  r.get('/admin/users/:id', { config: { permission: 'users.view' }, schema: { params: UserParams, querystring: Flash } }, async (request, reply) => {
    const user = await loadUser(request, request.params.id);
    const roles = await store.roles.listForUser(user.id);
    return html(reply, renderPage(<DetailsTab {...ctx(request)} user={user} roles={roles} nationalId={nationalId} flash={flashFor(request.query.done, user)} />));
  });

  r.post(
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

  r.post('/admin/users/:id/status', { config: { permission: 'users.edit' }, schema: { params: UserParams, body: StatusBody } }, async (request, reply) => {
    const user = await loadOtherUser(request, request.params.id);
    if (request.body.action === 'unlock') {
      await store.transaction(async (tx) => {
        await tx.users.resetFailedSignins(user.id);
        await audit(app, request, { event: 'user.unlocked', subjectUserId: user.id, detail: { failedSignins: user.failed_signins } }, tx);
      });
      return reply.redirect(`/admin/users/${user.id}?done=unlocked`, 303);
    }
    const suspend = request.body.action === 'suspend';
    if (suspend) await suspendUser(app, request, user, 'console');
    else await reactivateUser(app, request, user, 'console');
    return reply.redirect(`/admin/users/${user.id}?done=${suspend ? 'suspended' : 'reactivated'}`, 303);
  });

  r.get('/admin/users/:id/activity', { config: { permission: 'users.view' }, schema: { params: UserParams, querystring: Flash } }, async (request, reply) => {
    const user = await loadUser(request, request.params.id);
    const before = request.query.before ? Number(request.query.before) : undefined;
    const rows = await store.audit.search({ subjectUserId: user.id, beforeId: before }, AUDIT_PAGE_SIZE + 1);
    const events = rows.slice(0, AUDIT_PAGE_SIZE);
    const nextBefore = rows.length > AUDIT_PAGE_SIZE ? events[events.length - 1]!.id : undefined;
    return html(reply, renderPage(<ActivityTab {...ctx(request)} user={user} events={events} nextBefore={nextBefore} />));
  });
}
