import type { FastifyInstance, FastifyRequest } from 'fastify';
import { requestContext } from './plugins/sessions.js';

export interface AuditArgs {
  event: string;
  outcome?: 'success' | 'failure';
  subjectUserId?: string | null;
  actorUserId?: string | null;
  authenticatorId?: string | null;
  detail?: Record<string, unknown>;
}

/** Record who did what to whom, from where. Never pass secrets in `detail`. */
export async function audit(app: FastifyInstance, request: FastifyRequest | null, args: AuditArgs, store = app.latchkey.store): Promise<void> {
  const ctx = request ? requestContext(request) : { ip: null, userAgent: null };
  await store.audit.record({
    at: app.latchkey.now(),
    event: args.event,
    outcome: args.outcome ?? 'success',
    actorUserId: args.actorUserId === undefined ? (request?.auth?.user.id ?? args.subjectUserId ?? null) : args.actorUserId,
    subjectUserId: args.subjectUserId ?? null,
    authenticatorId: args.authenticatorId ?? null,
    ip: ctx.ip,
    userAgent: ctx.userAgent,
    detail: args.detail,
  });
}

/** Words people read in "Recent activity". */
export const auditEventLabels: Record<string, string> = {
  'signin': 'Signed in',
  'signin.failed': 'Failed sign-in attempt',
  'signup': 'Account created',
  'passkey.added': 'Passkey added',
  'passkey.renamed': 'Passkey renamed',
  'passkey.removed': 'Passkey removed',
  'passkey.counter_regressed': 'Passkey refused: possible copied authenticator',
  'reauth': 'Confirmed it was you with a passkey',
  'reauth.failed': 'Failed passkey check',
  'session.ended': 'Signed out a session',
  'signout': 'Signed out',
  'enrolment.invited': 'Invite link created',
  'enrolment.completed': 'Passkey set up from invite link',
  'user.created': 'Account created',
  'user.suspended': 'User suspended',
  'user.reactivated': 'User reactivated',
  'user.unlocked': 'Failed sign-ins cleared',
  'self_service.added': 'Authenticator added by the person (self-service)',
  'self_service.code_sent': 'Self-service code emailed',
  'self_service.code_failed': 'Wrong self-service code',
  'self_service.check_failed': 'Self-service details did not match',
  'self_service.limited': 'Self-service attempts limited',
  'totp.added': 'Authenticator app added',
  'password.changed': 'Password changed',
  'authenticator.removed_by_user': 'Sign-in method removed',
  'user.national_id_set': 'National identifier recorded',
  'roles.changed': 'Roles changed',
  'enrolment.link_issued': 'Enrolment link generated',
  'enrolment.code_issued': '9-character code generated',
  'enrolment.emailed': 'Enrolment email sent',
  'enrolment.revoked': 'Enrolment link or code revoked',
  'enrolment.code_redeemed': '9-character code entered',
  'enrolment.code_failed': 'Wrong enrolment code entered',
  'authenticator.removed': 'Authenticator removed by an agent',
  'template.created': 'Email template added',
  'template.updated': 'Email template changed',
  'template.deleted': 'Email template deleted',
  'audit.exported': 'Audit log exported',
  'admin.bootstrap': 'First RA Manager created',
  'service.added': 'Service registered',
  'service.removed': 'Service removed',
  'linked_account.added': 'Work account linked',
  'oidc.consent': 'Allowed a service to sign you in',
  'oidc.step_up': 'A service asked for a stronger way to sign in',
};
