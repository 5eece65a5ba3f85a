/**
 * The self-service flow's one definition: its data, its steps and where each
 * may go, and the steps at which each page may be used.
 *
 *   details → code → verified → app-confirmed ⇄ app-password, then consumed
 *
 * A passkey (src/strategies/passkey/) or a linked account is added straight from `verified` (or from the
 * app steps, when someone changes their mind) and consumes the flow.
 */
import { Type } from 'typebox';
import { appError } from '../../errors.js';
import { defineFlow } from '../flowMachine.js';
import { describeDuration } from '../../views/describeDuration.js';
import { SELF_SERVICE_FLOW_SECONDS } from './limits.js';

export const SELF_SERVICE_FLOW = 'self-service';

const Step = Type.Union([Type.Literal('details'), Type.Literal('code'), Type.Literal('verified'), Type.Literal('app-confirmed'), Type.Literal('app-password')]);

export const SelfServiceDataSchema = Type.Object({
  step: Step,
  email: Type.Optional(Type.String()),
  codeHash: Type.Optional(Type.String()),
  codeExpiresAt: Type.Optional(Type.Number()),
  resends: Type.Optional(Type.Integer({ minimum: 0 })),
  passwordHash: Type.Optional(Type.String()),
  /** The TOTP secret being set up, sealed: the flow row must not hold it in clear. */
  sealedTotp: Type.Optional(Type.String()),
  /** Started from a service's step-up (settings): the interaction to go back to, and the service's name. */
  returnTo: Type.Optional(Type.String()),
  returnService: Type.Optional(Type.String()),
  /** Started from Login and security settings by someone signed in: no identity check, and Back leads there. */
  origin: Type.Optional(Type.Literal('settings')),
});

const CHOSEN = ['verified', 'app-confirmed', 'app-password'] as const;

export const selfServiceFlow = defineFlow({
  type: SELF_SERVICE_FLOW,
  data: SelfServiceDataSchema,
  transitions: {
    details: ['code'],
    // Details sent again, or a new code, stay at `code`.
    code: ['code', 'verified'],
    verified: ['app-confirmed'],
    'app-confirmed': ['app-confirmed', 'app-password'],
    'app-password': ['app-confirmed', 'app-password'],
  },
  pages: {
    // The code page's Back link leads to the details, which can be corrected (and sending them again sends a new code).
    details: ['details', 'code'],
    code: ['code'],
    // The choice, and each authenticator's first page: Back from the app's pages leads here too.
    choose: CHOSEN,
    appPassword: ['app-confirmed', 'app-password'],
    appSetup: ['app-password'],
  },
  messages: {
    expired: `This page has expired: you have ${describeDuration(SELF_SERVICE_FLOW_SECONDS)} to add an authenticator. Start again.`,
  },
  revoked: () => appError('email_code_burned'),
});
