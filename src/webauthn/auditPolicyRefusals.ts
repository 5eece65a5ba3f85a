/**
 * Every registration the authenticator policy refuses is audited, on whichever
 * page it happened (enrolment link, settings, self-service, sign-up): who, which
 * device, why. A root hook, so no route can forget it.
 */
import type { FastifyInstance } from 'fastify';
import { auditRefusal } from '../audit.js';
import { AuthenticatorNotAllowed } from './ceremonies.js';

export function auditPolicyRefusals(app: FastifyInstance): void {
  app.addHook('onError', async (request, _reply, error) => {
    if (!(error instanceof AuthenticatorNotAllowed)) return;
    try {
      await auditRefusal(app, request, { event: 'passkey.refused', outcome: 'refused', reason: error.reason, subject: error.userId, actorUserId: request.auth?.user.id ?? error.userId, detail: { device: error.device } });
    } catch (recordError) {
      request.log.warn({ err: recordError }, 'refusal not audited');
    }
  });
}
