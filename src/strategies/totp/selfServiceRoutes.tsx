/**
 * Adding an authenticator app from self-service: confirm only you have the
 * app → create a password → scan the QR code → enter a code. The app's
 * progress through these pages is its own (AppProgress), kept in the flow
 * through flows/selfService/kindEnrolment.ts; each page reached before the
 * one before it is done says to start again.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { audit } from '../../audit.js';
import { randomToken } from '../../crypto.js';
import type { FieldError } from '../../errors.js';
import { renderPage } from '../../views/render.js';
import { html } from '../../http/replies.js';
import { Csrf, Id } from '../../http/schemas.js';
import {
  completeSelfServiceEnrolment,
  loadSelfServiceEnrolment,
  requireKindProgress,
  saveKindProgress,
  selfServicePageBase,
  type SelfServiceEnrolment,
} from '../../flows/selfService/kindEnrolment.js';
import { checkNewPassword, hashPassword } from '../password/passwords.js';
import { checkTotp, formatSecret, newTotpSecret, totpUri } from './totp.js';
import { TOTP_TYPE } from './kind.js';
import { AppConfirmPage, PasswordPage, ScanPage } from './selfServiceViews.js';
import { NO_PASSKEY_COLUMNS } from '../authenticatorKind.js';

/** Where the person is in the app's pages: confirmed only they have it, then a password chosen and a secret made. */
const AppProgress = Type.Union([
  Type.Object({ stage: Type.Literal('confirmed') }),
  Type.Object({
    stage: Type.Literal('password'),
    passwordHash: Type.String(),
    /** The TOTP secret being set up, sealed: the flow row must not hold it in clear. */
    sealedTotp: Type.String(),
  }),
]);

const FlowParams = Type.Object({ flowId: Id });
const ConfirmBody = Type.Object({ ...Csrf, confirm: Type.Optional(Type.String({ maxLength: 16 })) });
const PasswordBody = Type.Object({ ...Csrf, password: Type.Optional(Type.String({ maxLength: 1000 })), confirmPassword: Type.Optional(Type.String({ maxLength: 1000 })) });
const CodeBody = Type.Object({ ...Csrf, code: Type.Optional(Type.String({ maxLength: 100 })) });

type Stage = 'confirmed' | 'password';

function passwordStage(enrolment: SelfServiceEnrolment) {
  const progress = requireKindProgress(enrolment, TOTP_TYPE, AppProgress);
  if (progress.stage !== 'password') throw new Error('unreachable: loaded at the password stage');
  return progress;
}

export async function totpSelfServiceRoutes(app: FastifyInstance) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const { config, now, secretBox } = app.latchkey;

  /** The flow past the identity check, with the app's progress at one of `stages`; otherwise start again. */
  async function loadAppStage(request: FastifyRequest & { params: { flowId: string } }, stages: Stage[]): Promise<SelfServiceEnrolment> {
    const enrolment = await loadSelfServiceEnrolment(app, request);
    requireKindProgress(enrolment, TOTP_TYPE, AppProgress, (p) => stages.includes(p.stage));
    return enrolment;
  }

  r.get('/add-authenticator/:flowId/app', { schema: { params: FlowParams } }, async (request, reply) => {
    const { flow, data } = await loadSelfServiceEnrolment(app, request);
    return html(reply, renderPage(<AppConfirmPage {...selfServicePageBase(app, request, data)} flowId={flow.id} errors={[]} />));
  });

  r.post(
    '/add-authenticator/:flowId/app',
    { schema: { params: FlowParams, body: ConfirmBody } },
    async (request, reply) => {
      const enrolment = await loadSelfServiceEnrolment(app, request);
      const { flow, data } = enrolment;
      if (request.body.confirm !== 'yes') {
        const errors = [{ field: 'confirm', message: 'Select the box to confirm only you have access to the authenticator app' }];
        return html(reply, renderPage(<AppConfirmPage {...selfServicePageBase(app, request, data)} flowId={flow.id} errors={errors} />), 400);
      }
      await saveKindProgress(app, enrolment, TOTP_TYPE, { stage: 'confirmed' });
      return reply.redirect(`/add-authenticator/${flow.id}/app/password`, 303);
    },
  );

  r.get('/add-authenticator/:flowId/app/password', { schema: { params: FlowParams } }, async (request, reply) => {
    const { flow, data } = await loadAppStage(request, ['confirmed', 'password']);
    return html(reply, renderPage(<PasswordPage {...selfServicePageBase(app, request, data)} flowId={flow.id} errors={[]} />));
  });

  r.post(
    '/add-authenticator/:flowId/app/password',
    { schema: { params: FlowParams, body: PasswordBody } },
    async (request, reply) => {
      const enrolment = await loadAppStage(request, ['confirmed', 'password']);
      const { flow, data, user } = enrolment;
      const password = request.body.password ?? '';
      const errors: FieldError[] = [];
      const problem = password ? checkNewPassword(password, { email: user.email, displayName: user.display_name }) : 'Enter a password';
      if (problem) errors.push({ field: 'password', message: problem });
      else if ((request.body.confirmPassword ?? '') !== password) errors.push({ field: 'confirmPassword', message: 'The passwords do not match' });
      if (errors.length) return html(reply, renderPage(<PasswordPage {...selfServicePageBase(app, request, data)} flowId={flow.id} errors={errors} />), 400);
      const secretBase32 = newTotpSecret();
      await saveKindProgress(app, enrolment, TOTP_TYPE, { stage: 'password', passwordHash: await hashPassword(password), sealedTotp: secretBox.seal(secretBase32, `self-service:${flow.id}`) });
      return reply.redirect(`/add-authenticator/${flow.id}/app/setup`, 303);
    },
  );

  async function scanPage(request: FastifyRequest, reply: FastifyReply, { flow, data, user }: SelfServiceEnrolment, sealedTotp: string, errors: FieldError[], status = 200) {
    const secretBase32 = secretBox.open(sealedTotp, `self-service:${flow.id}`);
    // Loaded on the first authenticator-app enrolment, not at start (qrcode and pngjs: about 0.7 MiB of heap).
    const { default: QRCode } = await import('qrcode');
    const svg = await QRCode.toString(totpUri(secretBase32, config.organisation, user.email), { type: 'svg', margin: 2, errorCorrectionLevel: 'M' });
    const dataUri = `data:image/svg+xml;base64,${Buffer.from(svg).toString('base64')}`;
    return html(reply, renderPage(<ScanPage {...selfServicePageBase(app, request, data)} flowId={flow.id} qrSvgDataUri={dataUri} secret={formatSecret(secretBase32)} errors={errors} />), status);
  }

  r.get('/add-authenticator/:flowId/app/setup', { schema: { params: FlowParams } }, async (request, reply) => {
    const enrolment = await loadAppStage(request, ['password']);
    return scanPage(request, reply, enrolment, passwordStage(enrolment).sealedTotp, []);
  });

  r.post(
    '/add-authenticator/:flowId/app/verify',
    { schema: { params: FlowParams, body: CodeBody } },
    async (request, reply) => {
      const enrolment = await loadAppStage(request, ['password']);
      const { flow, user } = enrolment;
      const { passwordHash, sealedTotp } = passwordStage(enrolment);
      const secretBase32 = secretBox.open(sealedTotp, `self-service:${flow.id}`);
      const step = checkTotp(secretBase32, request.body.code ?? '', now(), -1);
      if (step === undefined) {
        return scanPage(request, reply, enrolment, sealedTotp, [{ field: 'code', message: 'The code is not right. Enter the 6-digit code your app shows now' }], 400);
      }
      const authenticatorId = randomToken(12);
      const t = now();
      const done = await completeSelfServiceEnrolment(app, request, enrolment, {
        choice: 'app',
        what: 'authenticator app',
        add: async (tx) => {
          await tx.authenticators.insert({
            id: authenticatorId,
            user_id: user.id,
            type: TOTP_TYPE,
            credential_id: `totp:${authenticatorId}`,
            ...NO_PASSKEY_COLUMNS,
            // Sealed under the authenticator's own id: the ciphertext can't be moved to another row. The step just
            // used can't be used again to sign in.
            config: app.latchkey.kinds.serializeConfig(TOTP_TYPE, { sealedSecret: secretBox.seal(secretBase32, `totp:${authenticatorId}`), lastStep: step }),
            name: 'Authenticator app',
            created_at: t,
            last_used_at: null,
            issued_by: null,
          });
          await tx.users.setPasswordHash(user.id, passwordHash, t);
          await audit(app, request, { event: 'totp.added', subjectUserId: user.id, actorUserId: user.id, authenticatorId, detail: { via: 'self-service' } }, tx);
          return authenticatorId;
        },
      });
      return reply.redirect(done, 303);
    },
  );
}
