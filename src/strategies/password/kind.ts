/**
 * A password alone: one factor, not phishing-resistant (AAL1, amr `pwd`), and
 * only with LATCHKEY_PASSWORD_SIGNIN=alone. A person who sets a password in
 * settings gets one row of this kind (configuration `{}`); the password itself
 * is the person's one password (users.password_hash), shared with their
 * authenticator apps. With `with-app` the row signs nobody in, and
 * step-up and the services page leave it out.
 */
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { defineKind } from '../authenticatorKind.js';
import { passwordSignInRoutes } from './routes.js';
import { passwordSettingsRoutes } from './settingsRoutes.js';

export const PASSWORD_TYPE = 'password';

export const passwordKind = defineKind({
  type: PASSWORD_TYPE,
  config: Type.Object({}),
  noun: 'password',
  assurance: (_a, _config, { config, user }) => (config.passwordSignIn === 'alone' && user.password_hash ? { aal: 1, phishingResistant: false, amr: ['pwd'] } : undefined),
  // Weaker than any primary way in: it confirms it is the person only for someone who has nothing stronger.
  stepUp: 'fallback',
  display: () => ({ label: 'Password' }),
  settingsSection: 'others',
  removeWarning: 'If you use an authenticator app, your password still works with its code.',
  usesPassword: true,
  auditEvents: { 'password.set': 'Password set for signing in on its own' },
  // /signin/password (a password alone, or with an app's code) and settings' "Set a password".
  async routes(app: FastifyInstance) {
    await passwordSignInRoutes(app);
    await passwordSettingsRoutes(app);
  },
});
