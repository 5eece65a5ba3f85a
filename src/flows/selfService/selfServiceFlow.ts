/**
 * The self-service flow's one definition: its data, its steps and where each
 * may go, and the steps at which each page may be used.
 *
 *   details → code → verified, then consumed
 *
 * At `verified` the chosen kind keeps its own progress (`kindProgress`, read and written with the kind's own
 * schema through kindEnrolment.ts), so the flow knows nothing of any kind's pages.
 * Whichever kind finishes (completeSelfServiceEnrolment) consumes the flow, even after another kind's progress
 * when someone changes their mind.
 */
import { Type } from 'typebox';
import { appError } from '../../errors.js';
import { defineFlow } from '../flowMachine.js';
import { describeDuration } from '../../views/describeDuration.js';
import { SELF_SERVICE_FLOW_SECONDS } from './limits.js';

export const SELF_SERVICE_FLOW = 'self-service';

const Step = Type.Union([Type.Literal('details'), Type.Literal('code'), Type.Literal('verified')]);

export const SelfServiceDataSchema = Type.Object({
  step: Step,
  email: Type.Optional(Type.String()),
  codeHash: Type.Optional(Type.String()),
  codeExpiresAt: Type.Optional(Type.Number()),
  resends: Type.Optional(Type.Integer({ minimum: 0 })),
  /** The chosen kind's own progress through its pages, tagged with its type; the kind checks the rest with its own schema. */
  kindProgress: Type.Optional(Type.Object({ type: Type.String() }, { additionalProperties: true })),
  /** Started from a service's step-up (settings): the interaction to go back to, and the service's name. */
  returnTo: Type.Optional(Type.String()),
  returnService: Type.Optional(Type.String()),
  /** Started from Login and security settings by someone signed in: no identity check, and Back leads there. */
  origin: Type.Optional(Type.Literal('settings')),
});

export const selfServiceFlow = defineFlow({
  type: SELF_SERVICE_FLOW,
  data: SelfServiceDataSchema,
  transitions: {
    details: ['code'],
    // Details sent again, or a new code, stay at `code`.
    code: ['code', 'verified'],
    // A kind's progress is saved at `verified`.
    verified: ['verified'],
  },
  pages: {
    // The code page's Back link leads to the details, which can be corrected (and sending them again sends a new code).
    details: ['details', 'code'],
    code: ['code'],
    // The choice, and each kind's pages: Back from them leads here too.
    choose: ['verified'],
  },
  messages: {
    expired: `This page has expired: you have ${describeDuration(SELF_SERVICE_FLOW_SECONDS)} to add an authenticator. Start again.`,
  },
  revoked: () => appError('email_code_burned'),
});
