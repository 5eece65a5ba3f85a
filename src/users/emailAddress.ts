/**
 * The one email address check, for the server (forms, the CLI, schemas, an OpenID
 * Connect login_hint) and the browser bundle alike.
 */

/** RFC 5321 §4.5.3.1: a path is at most 256 octets with its angle brackets, so an address is at most 254. */
export const EMAIL_ADDRESS_MAX_LENGTH = 254;

/**
 * One @, no spaces, a local part of at most 64 characters (RFC 5321 §4.5.3.1.1) and a domain with a dot.
 * Deliverability is proven by the mail we send, not by a longer pattern.
 */
export const EMAIL_ADDRESS_PATTERN = '^[^\\s@]{1,64}@[^\\s@]+\\.[^\\s@]+$';
const EMAIL_ADDRESS = new RegExp(EMAIL_ADDRESS_PATTERN);

export const EMAIL_ADDRESS_FORMAT_MESSAGE = 'Enter an email address in the correct format, like name@example.com';

/** Whether a (trimmed) value looks like an email address we can send to. */
export function isEmailAddress(value: string): boolean {
  return value.length <= EMAIL_ADDRESS_MAX_LENGTH && EMAIL_ADDRESS.test(value);
}

/**
 * The message for a form's email field, or undefined when the address is fine. `missing` is the page's own words for
 * an empty field ("Enter your email address" where the person types their own).
 */
export function checkEmailAddress(value: string, missing = 'Enter an email address'): string | undefined {
  if (!value) return missing;
  return isEmailAddress(value) ? undefined : EMAIL_ADDRESS_FORMAT_MESSAGE;
}
