/**
 * National identifiers (default: UK National Insurance number). They are kept
 * only as an HMAC under the server secret, so the database never holds one an
 * attacker could read back; agents can set or change one but never see it.
 */
import { hmac } from '../crypto.js';

export interface NationalIdFormat {
  label: string;
  hint: string;
  /** Upper case, no spaces: the form that is hashed. */
  normalise(raw: string): string;
  /** A message when the normalised value is not in the format, else undefined. */
  check(normalised: string): string | undefined;
}

// HMRC: two prefix letters (not D, F, I, Q, U, V; the second not O), six digits, suffix A–D;
// some prefixes are never issued.
// QQ is never issued either, but it is the prefix of the example everyone uses (GOV.UK), so test data uses it too.
const NINO = /^(?:[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]|QQ)[0-9]{6}[A-D]$/;
const NINO_NOT_ISSUED = new Set(['BG', 'GB', 'KN', 'NK', 'NT', 'TN', 'ZZ']);

export const nationalInsuranceNumber: NationalIdFormat = {
  label: 'National Insurance number',
  hint: 'It is on your National Insurance card, payslip or P60. For example, QQ 12 34 56 C.',
  normalise: (raw) => raw.replace(/[\s-]+/g, '').toUpperCase(),
  check: (value) =>
    NINO.test(value) && !NINO_NOT_ISSUED.has(value.slice(0, 2))
      ? undefined
      : 'Enter a National Insurance number in the correct format, like QQ 12 34 56 C',
};

export function hashNationalId(secret: string, normalised: string): string {
  return hmac(secret, `national-id:${normalised}`);
}

/**
 * The identifier this deployment asks for: the National Insurance number, or
 * one described by LATCHKEY_NATIONAL_ID_LABEL / _PATTERN / _HINT (checked
 * against the pattern after removing spaces and hyphens and upper-casing).
 */
export function nationalIdFormat(config: { nationalIdLabel?: string; nationalIdPattern?: RegExp; nationalIdHint?: string }): NationalIdFormat {
  if (!config.nationalIdPattern) {
    return config.nationalIdLabel ? { ...nationalInsuranceNumber, label: config.nationalIdLabel, hint: config.nationalIdHint ?? nationalInsuranceNumber.hint } : nationalInsuranceNumber;
  }
  const label = config.nationalIdLabel ?? 'National identifier';
  const pattern = config.nationalIdPattern;
  return {
    label,
    hint: config.nationalIdHint ?? '',
    normalise: nationalInsuranceNumber.normalise,
    check: (value) => (pattern.test(value) ? undefined : `Enter your ${label} in the correct format`),
  };
}
