/**
 * Adding a passkey from self-service (the passkey choice's pages): the page,
 * the WebAuthn options and the verification that finishes the flow through
 * flows/selfService/kindEnrolment.ts. Each page answers only for a flow past
 * the identity check, as the choice page does.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { RegistrationResponseJSON } from '@simplewebauthn/server';
import { audit } from '../../audit.js';
import { appError, mapUniqueViolation } from '../../errors.js';
import { renderPage } from '../../views/render.js';
import { html } from '../../http/replies.js';
import { Id } from '../../http/schemas.js';
import { PasskeyNameSchema, PlacementSchema, RegistrationResponseSchema } from '../../webauthn/schemas.js';
import { completeSelfServiceEnrolment, loadSelfServiceEnrolment, selfServicePageBase } from '../../flows/selfService/kindEnrolment.js';
import { countFailures } from '../../metrics/metrics.js';
import { SELF_SERVICE_PASSKEY_CEREMONY, selfServicePasskeyCeremony } from './selfServicePasskeyCeremony.js';
import { PasskeyPage } from './selfServiceViews.js';
import { originDetail } from '../../webauthn/allowedOrigins.js';

const FlowParams = Type.Object({ flowId: Id });
const PasskeyOptionsBody = Type.Object({ name: Type.Optional(Type.Union([PasskeyNameSchema, Type.Literal('')])), placement: PlacementSchema });
const PasskeyVerifyBody = Type.Object({
  response: RegistrationResponseSchema,
  name: Type.Optional(Type.String({ maxLength: 64 })),
  placement: Type.Optional(Type.String({ maxLength: 32 })),
});

export async function passkeySelfServiceRoutes(app: FastifyInstance) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const { webauthn } = app.latchkey;

  r.get('/add-authenticator/:flowId/passkey', { schema: { params: FlowParams } }, async (request, reply) => {
    const { flow, data } = await loadSelfServiceEnrolment(app, request);
    return html(reply, renderPage(<PasskeyPage {...selfServicePageBase(app, request, data)} flowId={flow.id} />));
  });
  // The form posts here only when the page's script did not run.
  r.post('/add-authenticator/:flowId/passkey', { schema: { params: FlowParams } }, async (request, reply) =>
    reply.redirect(`/add-authenticator/${request.params.flowId}/passkey?nojs=1`, 303),
  );

  r.post(
    '/add-authenticator/:flowId/passkey/options',
    { schema: { params: FlowParams, body: PasskeyOptionsBody } },
    async (request) => {
      const { flow, user } = await loadSelfServiceEnrolment(app, request);
      const options = await webauthn.startRegistrationFor(user, { flowType: SELF_SERVICE_PASSKEY_CEREMONY, bindingHash: request.bindingHash, placement: request.body.placement, data: { selfServiceFlowId: flow.id } });
      return { options };
    },
  );

  r.post(
    '/add-authenticator/:flowId/passkey/verify',
    { schema: { params: FlowParams, body: PasskeyVerifyBody }, onError: countFailures(app.latchkey.metrics, 'self_service', 'passkey') },
    async (request) => {
      const enrolment = await loadSelfServiceEnrolment(app, request);
      const { flow, user } = enrolment;
      const ceremony = await webauthn.peekFlow(SELF_SERVICE_PASSKEY_CEREMONY, request.body.response.response.clientDataJSON, request.bindingHash);
      if (selfServicePasskeyCeremony.read(ceremony)?.selfServiceFlowId !== flow.id) throw appError('challenge_invalid');
      const { authenticator, origin } = await webauthn.finishRegistrationFor(user.id, { flowType: SELF_SERVICE_PASSKEY_CEREMONY, bindingHash: request.bindingHash, response: request.body.response as RegistrationResponseJSON, typedName: request.body.name });
      const done = await completeSelfServiceEnrolment(app, request, enrolment, {
        choice: 'passkey',
        what: 'passkey',
        add: async (tx) => {
          await tx.authenticators.insert(authenticator);
          await audit(app, request, { event: 'passkey.added', subjectUserId: user.id, actorUserId: user.id, authenticatorId: authenticator.id, detail: { name: authenticator.name, via: 'self-service', ...originDetail(app.latchkey.config, origin) } }, tx);
          return authenticator.id;
        },
      }).catch(mapUniqueViolation('credential_exists'));
      return { status: 'ok', redirect: done };
    },
  );
}
