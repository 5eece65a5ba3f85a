/**
 * Limits of agent-issued enrolment codes that are not configuration, in one leaf module: the flow enforces them
 * and the messages (errors.ts) state them from here. A code's lifetime is config.enrolmentCodeSeconds.
 */
import { describeDuration } from '../../views/describeDuration.js';

/** Wrong tries (email address or code) before an outstanding code stops working. */
export const CODE_MAX_ATTEMPTS = 5;
/** How long the enrolment link a redeemed code opens stays usable, to set up the passkey. */
export const REDEEMED_CODE_LINK_SECONDS = 15 * 60;

/** The answer to an expired code, stating the configured lifetime. */
export function enrolmentCodeExpiredMessage(codeSeconds: number): string {
  return `This code has expired: codes work for ${describeDuration(codeSeconds)}. Ask your agent for a new code.`;
}
