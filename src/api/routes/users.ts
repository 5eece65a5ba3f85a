/** Users in the admin API: add, get, search (cursor-paged), suspend and reactivate — the console's functions. */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { appError, validationFailed } from '../../errors.js';
import type { User } from '../../db/schema.js';
import { UserInputError } from '../../users/createUser.js';
import { addUser, checkNewUser, USER_EXISTS_MESSAGE } from '../../users/addUser.js';
import { nationalIdFormat } from '../../users/nationalId.js';
import { reactivateUser, suspendUser } from '../../users/suspendUser.js';
import { Cursor, decodeCursor, encodeCursor, errorResponses, fieldLabels, Limit, loadOtherUser, loadUser, Page, UserJson, userJson, UserPath } from '../schemas.js';

const NewUserBody = Type.Object({
  // Loose on purpose: checkNewUser says what is wrong with a name or an address, in the console's words.
  name: Type.String({ maxLength: 2000, description: 'Full name (1 to 100 characters)' }),
  email: Type.String({ maxLength: 2000, description: 'Email address; unique, compared without regard to case' }),
  nationalInsuranceNumber: Type.Optional(
    Type.String({ maxLength: 200, description: 'The national identifier this deployment records (by default the UK National Insurance number, e.g. QQ 12 34 56 C); kept only as an HMAC' }),
  ),
});

const SearchQuery = Type.Object({
  q: Type.Optional(Type.String({ maxLength: 254, description: 'Start of the name or email address (any case), or of the user id' })),
  status: Type.Optional(Type.Union([Type.Literal('pending'), Type.Literal('enrolled'), Type.Literal('suspended')])),
  limit: Type.Optional(Limit),
  cursor: Type.Optional(Cursor),
});

const tags = ['users'];

export async function apiUsersRoutes(app: FastifyInstance) {
  const { config, store } = app.latchkey;
  const format = nationalIdFormat(config);
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const labels = fieldLabels({ name: 'name', email: 'email', nationalInsuranceNumber: 'nationalInsuranceNumber', q: 'q', status: 'status' });

  const withRoles = async (user: User) => userJson(user, await store.roles.listForUser(user.id));

  r.post(
    '/api/v1/users',
    {
      config: { permission: 'users.add', fieldLabels: labels },
      schema: {
        operationId: 'createUser',
        summary: 'Add a user',
        description: `Adds a person as Pending (no authenticator yet), as the console's "Add user" does; then issue them an enrolment. 409 \`user_exists\` when the email address is taken. The ${format.label} is checked and kept only as an HMAC.`,
        tags,
        body: NewUserBody,
        response: { 201: UserJson, ...errorResponses('user_exists') },
      },
    },
    async (request, reply) => {
      const { values, errors } = checkNewUser(format, { name: request.body.name, email: request.body.email, nationalId: request.body.nationalInsuranceNumber });
      // Fields named as in the request body.
      const fields = errors.map((e) => (e.field === 'nationalId' ? { ...e, field: 'nationalInsuranceNumber' } : e));
      if (fields.length) throw validationFailed(fields);
      const exists = () => appError('user_exists', undefined, [{ field: 'email', message: USER_EXISTS_MESSAGE }]);
      if (await store.users.findByEmail(values.email)) throw exists();
      let user: User;
      try {
        user = await addUser(app, request, values, 'api');
      } catch (err) {
        // Lost a race for the address with another request.
        if (err instanceof UserInputError) throw exists();
        throw err;
      }
      return reply.status(201).send(userJson(user, []));
    },
  );

  r.get(
    '/api/v1/users',
    {
      config: { permission: 'users.view', fieldLabels: labels },
      schema: {
        operationId: 'searchUsers',
        summary: 'Search users',
        description:
          'As the console searches: name matches first, then email, then id; without `q`, everyone by name. Pages follow `nextCursor`; each user appears once across the pages.',
        tags,
        querystring: SearchQuery,
        response: { 200: Page(UserJson, 'A page of users'), ...errorResponses() },
      },
    },
    async (request) => {
      const limit = request.query.limit ?? 25;
      const after = request.query.cursor ? decodeCursor(request.query.cursor, ['number', 'string', 'string'] as const) : undefined;
      // The search's phases are 0, 1 and 2 (users persister searchAfter): any other number is a cursor we never gave.
      if (after && !(Number.isInteger(after[0]) && after[0] >= 0 && after[0] <= 2)) throw validationFailed([{ field: 'cursor', message: 'This cursor is not valid: start again from the first page' }]);
      const rows = await store.users.searchAfter({
        query: request.query.q,
        status: request.query.status,
        after: after && { phase: after[0], value: after[1], id: after[2] },
        limit,
      });
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        items: await Promise.all(page.map((row) => withRoles(row.user))),
        nextCursor: rows.length > limit && last ? encodeCursor([last.position.phase, last.position.value, last.position.id]) : null,
      };
    },
  );

  r.get(
    '/api/v1/users/:id',
    {
      config: { permission: 'users.view', fieldLabels: labels },
      schema: { operationId: 'getUser', summary: 'Get a user', tags, params: UserPath, response: { 200: UserJson, ...errorResponses('user_not_found') } },
    },
    async (request) => withRoles(await loadUser(request, request.params.id)),
  );

  for (const action of ['suspend', 'reactivate'] as const) {
    r.post(
      `/api/v1/users/:id/${action}`,
      {
        config: { permission: 'users.edit', fieldLabels: labels },
        schema: {
          operationId: action === 'suspend' ? 'suspendUser' : 'reactivateUser',
          summary: action === 'suspend' ? 'Suspend a user' : 'Reactivate a user',
          description:
            action === 'suspend'
              ? 'The person is signed out everywhere and cannot sign in; their unused enrolment links and codes are revoked.'
              : 'A suspended person can sign in again: Enrolled, or Pending when they have no authenticator.',
          tags,
          params: UserPath,
          response: { 200: UserJson, ...errorResponses('user_not_found', 'own_account') },
        },
      },
      async (request) => {
        const user = await loadOtherUser(request, request.params.id);
        if (action === 'suspend') await suspendUser(app, request, user, 'api');
        else await reactivateUser(app, request, user, 'api');
        return withRoles((await store.users.findById(user.id)) ?? user);
      },
    );
  }
}
