/**
 * A kind of authenticator that exists only in the test suite: a hardware token
 * with a serial number and a PIN (think of a smart card). It proves the seam of
 * src/strategies/authenticatorKind.ts — everything it needs is in this folder,
 * and it shows in self-service, settings, the console, the audit log and the
 * ID token's `amr` without a line changing anywhere else.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { audit } from '../../src/audit.js';
import { randomToken } from '../../src/crypto.js';
import { appError } from '../../src/errors.js';
import { completeSelfServiceEnrolment, loadSelfServiceEnrolment, selfServicePageBase } from '../../src/flows/selfService/kindEnrolment.js';
import { Page } from '../../src/flows/selfService/views.js';
import { safeNext } from '../../src/flows/signin/routes.js';
import { html } from '../../src/http/replies.js';
import { Csrf, Id } from '../../src/http/schemas.js';
import { startSession } from '../../src/plugins/sessions.js';
import { defineKind, NO_PASSKEY_COLUMNS, readKindConfig } from '../../src/strategies/authenticatorKind.js';
import { CsrfField } from '../../src/views/layout.js';
import { renderPage } from '../../src/views/render.js';

export const FAKE_TOKEN_TYPE = 'fake-token';
const pinHash = (serial: string, pin: string) => createHash('sha256').update(`${serial}:${pin}`).digest('base64url');

const EnrolBody = Type.Object({ ...Csrf, serial: Type.String({ pattern: '^[A-Z0-9]{4,16}$' }), pin: Type.String({ pattern: '^[0-9]{4,8}$' }) });
const SignInBody = Type.Object({ ...Csrf, email: Type.String({ maxLength: 254 }), serial: Type.String({ maxLength: 16 }), pin: Type.String({ maxLength: 8 }) });

async function fakeTokenRoutes(app: FastifyInstance) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const { store, now } = app.latchkey;

  r.get('/add-authenticator/:flowId/fake-token', { schema: { params: Type.Object({ flowId: Id }) } }, async (request, reply) => {
    const enrolment = await loadSelfServiceEnrolment(app, request);
    return html(
      reply,
      renderPage(
        <Page {...selfServicePageBase(app, request, enrolment.data)} title="Add a hardware token" back={`/add-authenticator/${enrolment.flow.id}/choose`}>
          <h1>Add a hardware token</h1>
          <form method="post">
            <CsrfField token={request.csrfToken} />
            <input name="serial" aria-label="Serial number" />
            <input name="pin" type="password" aria-label="PIN" />
            <button type="submit">Add token</button>
          </form>
        </Page>,
      ),
    );
  });

  r.post('/add-authenticator/:flowId/fake-token', { schema: { params: Type.Object({ flowId: Id }), body: EnrolBody } }, async (request, reply) => {
    const enrolment = await loadSelfServiceEnrolment(app, request);
    const { user } = enrolment;
    const { serial, pin } = request.body;
    const done = await completeSelfServiceEnrolment(app, request, enrolment, {
      choice: FAKE_TOKEN_TYPE,
      what: 'fake hardware token',
      add: async (tx) => {
        const id = randomToken(12);
        await tx.authenticators.insert({
          id,
          user_id: user.id,
          type: FAKE_TOKEN_TYPE,
          credential_id: `fake-token:${serial}`,
          ...NO_PASSKEY_COLUMNS,
          config: app.latchkey.kinds.serializeConfig(FAKE_TOKEN_TYPE, { serial, pinHash: pinHash(serial, pin) }),
          name: `Token ${serial}`,
          created_at: now(),
          last_used_at: null,
        });
        await audit(app, request, { event: 'fake_token.added', subjectUserId: user.id, actorUserId: user.id, authenticatorId: id, detail: { serial } }, tx);
        return id;
      },
    });
    return reply.redirect(done, 303);
  });

  r.post('/signin/fake-token', { schema: { body: SignInBody, querystring: Type.Object({ next: Type.Optional(Type.String({ maxLength: 512 })) }) } }, async (request, reply) => {
    const { email, serial, pin } = request.body;
    const found = await store.authenticators.findByCredentialIdWithUser(`fake-token:${serial}`);
    const config = found && readKindConfig(fakeHardwareTokenKind, found.authenticator);
    if (!found || !config || found.user.email !== email || config.pinHash !== pinHash(serial, pin)) throw appError('signin_failed');
    const { user, authenticator } = found;
    await startSession(app, request, reply, user, undefined, authenticator.id, app.latchkey.kinds.signInAal(authenticator, user));
    await audit(app, request, { event: 'signin', subjectUserId: user.id, actorUserId: user.id, authenticatorId: authenticator.id, detail: { method: FAKE_TOKEN_TYPE } });
    return reply.redirect(safeNext(request.query.next) ?? '/settings', 303);
  });
}

export const fakeHardwareTokenKind = defineKind({
  type: FAKE_TOKEN_TYPE,
  config: Type.Object({ serial: Type.String(), pinHash: Type.String() }),
  noun: 'fake hardware token',
  // RFC 8176: sc (smart card), pin; device-bound, phishing-resistant, with a known provenance.
  assurance: () => ({ aal: 3, phishingResistant: true, amr: ['sc', 'pin', 'mfa'] }),
  stepUp: 'none',
  display: (_a, config) => ({ label: 'Fake hardware token', badges: <span class="badge">Serial {config.serial}</span> }),
  settingsSection: 'others',
  selfServiceChoices: () => [
    { value: FAKE_TOKEN_TYPE, label: 'Fake hardware token', what: 'fake hardware token', hint: 'A token with a serial number and a PIN.', path: (flowId) => `/add-authenticator/${flowId}/fake-token` },
  ],
  auditEvents: { 'fake_token.added': 'Fake hardware token added' },
  routes: fakeTokenRoutes,
});
