/**
 * A person's authenticators in the admin API: list them as the console's Authenticators tab describes them (kind,
 * model, synced or device-bound, assurance from the KindRegistry's one function), and remove one (removeAuthenticator,
 * as the console does: sessions end, the person is told).
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { appError } from '../../errors.js';
import type { Authenticator, User } from '../../db/schema.js';
import { Id } from '../../http/schemas.js';
import { passkeyStanding } from '../../webauthn/policyInWords.js';
import { AUTHENTICATOR_NOT_FOUND_MESSAGE, removeAuthenticator } from '../../admin/removeAuthenticator.js';
import { errorResponses, fieldLabels, iso, loadOtherUser, loadUser, UserPath } from '../schemas.js';

const AuthenticatorJson = Type.Object(
  {
    id: Type.String(),
    kind: Type.String({ description: 'passkey, totp, password, linked-account …' }),
    kindLabel: Type.String({ description: 'The kind in words, as the console shows it' }),
    name: Type.String(),
    model: Type.Union([Type.String(), Type.Null()], {
      description: 'Passkeys: the model from a verified attestation, else the FIDO metadata’s or the provider’s name (from its AAGUID); null when unknown',
    }),
    synced: Type.Union([Type.Boolean(), Type.Null()], {
      description: 'Passkeys: true when it can sync between the person’s devices (backup eligible), false when device-bound; null for other kinds',
    }),
    backedUp: Type.Union([Type.Boolean(), Type.Null()], { description: 'Passkeys: whether it is backed up now; null for other kinds' }),
    attested: Type.Union([Type.Boolean(), Type.Null()], { description: 'Passkeys: its attestation verified to the FIDO metadata' }),
    aal: Type.Union([Type.Integer({ minimum: 1, maximum: 3 }), Type.Null()], {
      description: 'The assurance level a sign-in with it gives now under the policy; null when it cannot sign in on its own',
    }),
    compromised: Type.Union([Type.String(), Type.Null()], { description: 'The FIDO metadata’s status when its model was reported compromised' }),
    createdAt: Type.String({ format: 'date-time' }),
    lastUsedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { description: 'An authenticator' },
);

const AuthenticatorPath = Type.Object({ id: Id, authenticatorId: Id });
const tags = ['authenticators'];

export async function apiAuthenticatorsRoutes(app: FastifyInstance) {
  const { store } = app.latchkey;
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const labels = fieldLabels({ authenticatorId: 'The authenticator id in the path' });

  function authenticatorJson(a: Authenticator, user: User) {
    const { kinds, trust } = app.latchkey;
    const isPasskey = kinds.get(a.type)?.settingsSection === 'passkeys';
    const standing = isPasskey ? passkeyStanding(a, user, kinds, trust) : undefined;
    const refused = standing?.compromised?.consequence === 'refuse';
    return {
      id: a.id,
      kind: a.type,
      kindLabel: kinds.displayOf(a, user).label,
      name: a.name,
      model: standing?.model ?? null,
      synced: standing ? !standing.deviceBound : null,
      backedUp: standing ? a.backed_up === 1 : null,
      attested: standing ? standing.attested : null,
      // As the console: a passkey whose model the policy refuses can't sign in, whatever its level would be.
      aal: refused ? null : (kinds.assuranceOf(a, user)?.aal ?? null),
      compromised: standing?.compromised?.status ?? null,
      createdAt: iso(a.created_at)!,
      lastUsedAt: iso(a.last_used_at),
    };
  }

  r.get(
    '/api/v1/users/:id/authenticators',
    {
      config: { permission: 'users.view', fieldLabels: labels },
      schema: {
        operationId: 'listUserAuthenticators',
        summary: 'A user’s authenticators',
        tags,
        params: UserPath,
        response: { 200: Type.Object({ items: Type.Array(AuthenticatorJson) }), ...errorResponses('user_not_found') },
      },
    },
    async (request) => {
      const user = await loadUser(request, request.params.id);
      const authenticators = await store.authenticators.listForUser(user.id);
      return { items: authenticators.map((a) => authenticatorJson(a, user)) };
    },
  );

  r.delete(
    '/api/v1/users/:id/authenticators/:authenticatorId',
    {
      config: { permission: 'authenticators.remove', fieldLabels: labels },
      schema: {
        operationId: 'removeAuthenticator',
        summary: 'Remove an authenticator',
        description:
          'As the console removes one: sessions signed in with it end, a person left with none returns to Pending, and the person is emailed a notice (the removal stands if the email cannot be sent).',
        tags,
        params: AuthenticatorPath,
        response: { 204: Type.Null({ description: 'Removed' }), ...errorResponses('user_not_found', 'own_account', 'not_found') },
      },
    },
    async (request, reply) => {
      const user = await loadOtherUser(request, request.params.id);
      const authenticator = await store.authenticators.findForUser(user.id, request.params.authenticatorId);
      if (!authenticator) throw appError('not_found', AUTHENTICATOR_NOT_FOUND_MESSAGE);
      await removeAuthenticator(app, request, user, authenticator);
      return reply.status(204).send(null);
    },
  );
}
