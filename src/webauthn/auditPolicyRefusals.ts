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
      const { store } = app.latchkey;
      // Signed out (sign-up, an enrolment link), the refusal counts against the IP address, and names a person only
      // if there is one (a sign-up's would-be account does not exist).
      const subject = async () => ((await store.users.findById(error.userId)) ? error.userId : null);
      await auditRefusal(app, request, { event: 'passkey.refused', outcome: 'refused', reason: error.reason, subject, actorUserId: request.auth?.user.id ?? null, detail: { device: error.device } });
    } catch (recordError) {
      request.log.warn({ err: recordError }, 'refusal not audited');
    }
  });
}
