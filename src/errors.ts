/**
 * One registry of typed errors. Every client-facing failure has a stable `code`,
 * an HTTP status and a message written for the person reading it. The error
 * handler in `plugins/errorHandler.ts` renders them as JSON or as an HTML page.
 */
import { isUniqueViolation } from './db/isUniqueViolation.js';
import { CODE_MAX_ATTEMPTS } from './flows/enrolment/limits.js';
import { EMAIL_CODE_MAX_ATTEMPTS, EMAIL_CODE_SECONDS, SELF_SERVICE_WINDOW_SECONDS } from './flows/selfService/limits.js';
import { describeDuration } from './views/describeDuration.js';
import { RATE_LIMIT_WINDOW_SECONDS } from './plugins/rateLimited.js';

export const errorCatalogue = {
  validation_failed: { status: 400, message: 'Some of the information sent was missing or not valid.' },
  bad_request: { status: 400, message: 'The request could not be understood.' },
  csrf_failed: { status: 403, message: 'This form has expired or was sent from another site. Reload the page and try again.' },
  not_signed_in: { status: 401, message: 'Sign in to continue.' },
  // The admin API and SCIM (src/api/guard.ts): a bearer token in the Authorization header, never a cookie.
  api_token_required: { status: 401, message: 'Send an API token in the Authorization header: "Authorization: Bearer lk_…". An RA Manager makes one in the console (API tokens) or with `latchkey api-tokens create`.' },
  api_token_invalid: { status: 401, message: 'This API token is not valid: it may have expired or been revoked. Ask an RA Manager for a new one.' },
  reauth_required: { status: 401, message: 'For your security, confirm it is you with a passkey before changing your passkeys.' },
  forbidden: { status: 403, message: 'You are not allowed to do that.' },
  // The console's gate: signed in, but holding no registration-authority role at all (the page and JSON say the same).
  no_console_role: { status: 403, message: 'Your account has no registration-authority role. Ask an RA Manager to give you one.' },
  // Routes pass a message naming the person; refused, like a role's refusal, but for the target's state, not the agent's role.
  user_suspended: { status: 403, message: 'This person is suspended. Reactivate them before issuing an authenticator.' },
  not_found: { status: 404, message: 'Page not found.' },
  payload_too_large: { status: 413, message: 'The request is too large (the limit is 64 KiB).' },
  unsupported_media_type: { status: 415, message: 'The request body must be JSON or a form.' },
  too_many_requests: { status: 429, message: `Too many attempts. Wait ${describeDuration(RATE_LIMIT_WINDOW_SECONDS)} and try again.` },
  signup_closed: { status: 403, message: 'New accounts are created by invitation only. Ask your administrator for an invite link.' },
  email_unavailable: { status: 409, message: 'An account could not be created with that email address. If you already have an account, sign in instead.' },
  challenge_invalid: { status: 400, message: 'This passkey request has expired or was already used. Try again.' },
  ceremony_failed: { status: 400, message: 'Your passkey could not be checked. Try again.' },
  credential_unknown: { status: 400, message: 'This passkey is not registered with this service. It may have been removed: choose another passkey or sign in another way.' },
  user_verification_required: {
    status: 400,
    message: 'Your passkey did not confirm it is you with a fingerprint, face, PIN or screen lock. Use a passkey on a device with a screen lock, or set a PIN on your security key.',
  },
  counter_regressed: {
    status: 400,
    message: 'This passkey could not be trusted (its signature counter went backwards, which can mean it was copied). Use another passkey and contact your administrator.',
  },
  authenticator_not_allowed: {
    status: 422,
    message: 'This passkey or security key can’t be used here: your organisation’s policy does not allow it. Use another one, or contact your registration authority.',
  },
  authenticator_compromised: {
    status: 403,
    message: 'This passkey can no longer be used: the FIDO Alliance reported a security problem with its model. Sign in another way and contact your registration authority for a new security key.',
  },
  credential_exists: { status: 409, message: 'This passkey is already registered. Choose another device or security key.' },
  last_passkey: {
    status: 409,
    message: 'You cannot remove your only passkey: you would not be able to sign in. Set up another passkey first, then remove this one.',
  },
  invite_invalid: { status: 404, message: 'This link is not valid. Check you copied the whole link, or ask for a new one.' },
  invite_expired: { status: 410, message: 'This link has expired. Ask the person who sent it (your registration authority agent or administrator) for a new one.' },
  invite_used: { status: 410, message: 'This link has already been used to set up a passkey. Sign in with your passkey, or ask for a new link.' },
  invite_revoked: { status: 410, message: 'This link is no longer valid: a newer link was sent, or it was cancelled. Use the newest link you received, or ask for a new one.' },
  enrolment_code_invalid: {
    status: 400,
    message: `The email address or the code is not right. Check both and try again. After ${CODE_MAX_ATTEMPTS} wrong tries the code stops working: ask your agent for a new one.`,
  },
  // The flow answers with the configured lifetime (enrolmentCodeExpiredMessage); this is the fallback.
  enrolment_code_expired: { status: 410, message: 'This code has expired. Ask your agent for a new code.' },
  enrolment_code_used: { status: 410, message: 'This code has already been used. If you did not finish setting up your passkey, ask your agent for a new code.' },
  enrolment_code_revoked: { status: 410, message: 'This code is no longer valid: it was cancelled or a newer one was issued. Ask your agent for a new code.' },
  own_account: {
    status: 403,
    message: 'You cannot change your own account from the registration-authority console. Ask another agent, or use your own Login and security settings.',
  },
  template_default: { status: 409, message: 'The default template cannot be deleted. You can change its subject and text instead.' },
  self_service_limited: {
    status: 429,
    message: `There have been too many attempts to add an authenticator from here or for this email address. Wait ${describeDuration(SELF_SERVICE_WINDOW_SECONDS)} and try again, or contact your registration authority.`,
  },
  email_code_invalid: { status: 400, message: 'The code is not right. Check the email we sent and try again.' },
  email_code_expired: { status: 410, message: `This code has expired: codes work for ${describeDuration(EMAIL_CODE_SECONDS)}. Select "Send a new code".` },
  email_code_burned: { status: 410, message: `The code was entered wrongly ${EMAIL_CODE_MAX_ATTEMPTS} times, so it has stopped working. Start again to get a new code.` },
  captcha_failed: { status: 400, message: 'The check that you are a person did not work. Wait for it to finish, then select Continue again.' },
  signin_failed: { status: 400, message: 'The email address, password or code is not right. Check them and try again.' },
  signin_throttled: { status: 429, message: 'Too many failed attempts to sign in to this account. Wait a moment and try again.' },
  account_locked: {
    status: 403,
    message: 'This account is locked after too many failed attempts to sign in. Contact your registration authority to unlock it.',
  },
  user_not_found: { status: 404, message: 'That user was not found. They may have been removed: search again.' },
  // The admin API's POST /api/v1/users (the console shows the same at the email field).
  user_exists: { status: 409, message: 'A user with this email address already exists.' },
  enrolment_not_active: { status: 409, message: 'That link or code was already used, revoked or expired.' },
  flow_expired: { status: 410, message: 'This page has expired. Start again.' },
  account_disabled: { status: 403, message: 'This account cannot sign in. Contact your administrator.' },
  mail_unavailable: { status: 503, message: 'The email could not be sent: the mail server is not available. Try again later, or copy the link and send it another way.' },
  // Linked work accounts (strategies/linkedAccount): routes pass a message naming the provider.
  upstream_unavailable: { status: 503, message: 'Your organisation\'s sign-in service is not available right now. Try again later or use another way to sign in.' },
  upstream_failed: { status: 400, message: 'Signing in with your organisation\'s account did not work. Try again, or use another way to sign in.' },
  linked_account_taken: { status: 409, message: 'This account is already linked to another profile.' },
  reauth_linked_account_mismatch: { status: 403, message: 'That is not the account linked to your profile. Sign in again with your own account.' },
  linked_account_unknown: {
    status: 400,
    message: 'This account is not linked to a profile here. Sign in another way, then link it, or ask your registration authority.',
  },
  // OpenID Connect interactions (src/oidc/interactions.tsx).
  interaction_expired: {
    status: 410,
    message: 'This sign-in request has expired or was already used. Go back to the service you were signing in to and start again.',
  },
  internal: { status: 500, message: 'Something went wrong on our side. Try again in a moment.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof errorCatalogue;

export interface FieldError {
  field: string;
  message: string;
}

/** A failure we expect and explain. `expose` is false for 5xx: their details stay in the log. */
export class AppError extends Error {
  readonly status: number;
  readonly expose: boolean;
  constructor(
    readonly code: ErrorCode,
    message?: string,
    readonly fields: FieldError[] = [],
  ) {
    super(message ?? errorCatalogue[code].message);
    this.name = 'AppError';
    this.status = errorCatalogue[code].status;
    this.expose = this.status < 500;
  }
}

export function appError(code: ErrorCode, message?: string, fields?: FieldError[]): AppError {
  return new AppError(code, message, fields);
}

/**
 * For `.catch()` on a write where the database settles a race through a unique
 * index: the loser gets `code` instead of an unexplained 500.
 */
/** `validation_failed` for fields a route checked itself, its message made of theirs (a JSON client's answer to a form). */
export function validationFailed(fields: FieldError[]): AppError {
  return appError('validation_failed', fields.map((f) => f.message).join('. ') + '.', fields);
}

export function mapUniqueViolation(code: ErrorCode) {
  return (error: unknown): never => {
    if (isUniqueViolation(error)) throw appError(code);
    throw error;
  };
}
