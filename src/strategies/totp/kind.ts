/**
 * Authenticator apps (TOTP), used with the person's password: together they
 * are two factors (AAL2), neither phishing-resistant. An app alone signs
 * nobody in, and the password goes with the last app (unless the person also
 * signs in with it alone: the password kind).
 */
import { Type } from 'typebox';
import { defineKind } from '../authenticatorKind.js';
import { totpSelfServiceRoutes } from './selfServiceRoutes.js';

export const TOTP_TYPE = 'totp';

export const totpKind = defineKind({
  type: TOTP_TYPE,
  config: Type.Object({
    /** The shared secret, sealed (src/secretBox.ts) under `totp:<authenticator id>`: never stored in clear. */
    sealedSecret: Type.String({ minLength: 1 }),
    /** The last time step used: each code signs in at most once (RFC 6238 §5.2). */
    lastStep: Type.Integer(),
  }),
  noun: 'authenticator app',
  assurance: (_a, _config, { user }) => (user.password_hash ? { aal: 2, phishingResistant: false, amr: ['pwd', 'otp', 'mfa'] } : undefined),
  stepUp: 'primary',
  display: () => ({ label: 'Authenticator app' }),
  settingsSection: 'others',
  removeWarning: 'If it is your last authenticator app, you can no longer sign in with your password and a code.',
  selfServiceChoices: () => [
    {
      value: 'app',
      label: 'Authenticator app',
      what: 'authenticator app',
      hint: 'Sign in with a password and a code from an app such as Microsoft Authenticator or Google Authenticator.',
      path: (flowId) => `/add-authenticator/${flowId}/app`,
    },
  ],
  // The password goes with the last app, unless the person also signs in with it alone (KindRegistry.removed).
  usesPassword: true,
  auditEvents: { 'totp.added': 'Authenticator app added' },
  // Its self-service pages (/add-authenticator/:flowId/app…).
  routes: totpSelfServiceRoutes,
});
