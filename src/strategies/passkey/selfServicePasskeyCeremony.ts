/** The passkey ceremony started from a self-service flow: it may finish only that flow. */
import { Type } from 'typebox';
import { defineFlow } from '../../flows/flowMachine.js';

export const SELF_SERVICE_PASSKEY_CEREMONY = 'self-service-passkey';

export const selfServicePasskeyCeremony = defineFlow({
  type: SELF_SERVICE_PASSKEY_CEREMONY,
  data: Type.Object({ selfServiceFlowId: Type.String() }),
});
