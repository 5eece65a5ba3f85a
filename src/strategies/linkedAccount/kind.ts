/**
 * Linked work accounts: sign-in through an organisation's OpenID Connect
 * provider, worth what that provider is configured to prove
 * (LATCHKEY_UPSTREAM_<ID>_AAL). The row's credential id is
 * `<issuer>#<subject>` (linkedAccounts.ts); `config` names the provider.
 */
import { Type } from 'typebox';
import { defineKind } from '../authenticatorKind.js';
import { linkedAccountRoutes } from './routes.js';
import { linkedAccountSelfServiceRoutes } from './selfServiceRoutes.js';

export const LINKED_ACCOUNT_TYPE = 'linked-account';

export const linkedAccountKind = defineKind({
  type: LINKED_ACCOUNT_TYPE,
  config: Type.Object({
    /** The configured upstream provider's id (LATCHKEY_UPSTREAM_<ID>_…). */
    provider: Type.String({ minLength: 1, maxLength: 32 }),
  }),
  noun: 'linked work account',
  assurance: (_a, { provider }, { config }) => {
    // A provider no longer configured signs nobody in.
    const upstream = config.upstreamProviders.find((p) => p.id === provider);
    return upstream ? { aal: upstream.aal, phishingResistant: false, amr: ['fed'] } : undefined;
  },
  stepUp: 'fallback',
  display: (_a, { provider }, { config }) => ({ label: `${config.upstreamProviders.find((p) => p.id === provider)?.name ?? 'Work'} account` }),
  settingsSection: 'others',
  selfServiceChoices: (config) =>
    config.upstreamProviders.map((p) => ({
      value: `linked:${p.id}`,
      label: p.name,
      what: `${p.name} account`,
      hint: `Sign in with your ${p.name} account.`,
      path: (flowId: string) => `/add-authenticator/${flowId}/linked/${p.id}`,
    })),
  auditEvents: { 'linked_account.added': 'Work account linked' },
  // The provider's callback and sign-in, then the self-service pages that link an account.
  async routes(app) {
    await app.register(linkedAccountRoutes);
    await app.register(linkedAccountSelfServiceRoutes);
  },
});
