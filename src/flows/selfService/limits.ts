/**
 * The limits of self-service "Add an authenticator", in one leaf module: the routes enforce them and the messages
 * (errors.ts, views, the emailed code) state them from here.
 */

/** How long the whole flow lasts from its start. */
export const SELF_SERVICE_FLOW_SECONDS = 30 * 60;
/** How long one emailed code works. */
export const EMAIL_CODE_SECONDS = 10 * 60;
/** Wrong entries of the emailed code before it stops working (a new code does not reset the count). */
export const EMAIL_CODE_MAX_ATTEMPTS = 5;
/** New codes a flow may ask for after the first. */
export const EMAIL_CODE_MAX_RESENDS = 3;
/** The window of the per-IP and per-address identity-check limits (config.selfServicePer…PerHour). */
export const SELF_SERVICE_WINDOW_SECONDS = 3600;
