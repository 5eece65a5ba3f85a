/**
 * A password alone: one factor, not phishing-resistant (AAL1, amr `pwd`). Off
 * by default — today a password signs in only with an authenticator app (the
 * totp kind) — and nobody has one on its own yet: the kind is here so its
 * assurance is stated once, where the next issue's password fallback will read it.
 */
import { Type } from 'typebox';
import { defineKind } from '../authenticatorKind.js';
import { passwordSignInRoutes } from './routes.js';

export const passwordKind = defineKind({
  type: 'password',
  config: Type.Object({}),
  noun: 'password',
  assurance: () => ({ aal: 1, phishingResistant: false, amr: ['pwd'] }),
  stepUp: 'none',
  display: () => ({ label: 'Password' }),
  settingsSection: 'others',
  // Password + app sign-in (/signin/password): a password signs in only with an app today.
  routes: passwordSignInRoutes,
});
