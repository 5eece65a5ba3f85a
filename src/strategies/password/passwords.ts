/**
 * Passwords, used only together with an authenticator app (seed 001): argon2id
 * (OWASP parameters: 19 MiB, 2 passes), at least 8 characters, and never one
 * from the list of common and breached passwords shipped with Latchkey (the
 * 49,000 of @zxcvbn-ts/language-common), as NIST SP 800-63B asks.
 */
import { createRequire } from 'node:module';
import { hash, verify } from '@node-rs/argon2';

// Loaded on the first password check, not at start: the package's word lists (names, English and Wikipedia words
// besides the passwords) take about 2 MiB of heap that a passkey-only server never needs. It is CommonJS, so
// require() loads it synchronously.
const require = createRequire(import.meta.url);

export const MIN_PASSWORD_LENGTH = 8;
/** Long enough for any passphrase, short enough that hashing can't be used to burn CPU. */
export const MAX_PASSWORD_LENGTH = 128;

let commonPasswords: Set<string> | undefined;
function isCommon(password: string): boolean {
  if (!commonPasswords) {
    const common = require('@zxcvbn-ts/language-common') as typeof import('@zxcvbn-ts/language-common');
    commonPasswords = new Set((common.dictionary['passwords-common'] as string[]).map((p) => p.toLowerCase()));
  }
  return commonPasswords.has(password.toLowerCase());
}

/** What is wrong with a new password, in words for the person choosing it; undefined when it is fine. */
export function checkNewPassword(password: string, person: { email: string; displayName: string }): string | undefined {
  const length = [...password].length;
  if (length < MIN_PASSWORD_LENGTH) return `Your password must be at least ${MIN_PASSWORD_LENGTH} characters`;
  if (length > MAX_PASSWORD_LENGTH) return `Your password must be ${MAX_PASSWORD_LENGTH} characters or fewer`;
  const lower = password.toLowerCase();
  if (isCommon(password) || /^(.)\1+$/.test(password)) return 'This password is too common: it appears in lists of passwords attackers try first. Choose another';
  if (lower === person.email.toLowerCase() || lower === person.email.split('@')[0]!.toLowerCase() || lower === person.displayName.toLowerCase().replace(/\s+/g, '')) {
    return 'Your password must not be your name or email address';
  }
  return undefined;
}

export function hashPassword(password: string): Promise<string> {
  return hash(password.normalize('NFKC'));
}

// Checked against when an account has no password, so an unknown email costs the same time as a wrong password.
let dummy: Promise<string> | undefined;

export async function verifyPassword(stored: string | null, password: string): Promise<boolean> {
  if ([...password].length > MAX_PASSWORD_LENGTH) return false;
  if (!stored) {
    dummy ??= hash('not the password of anyone');
    await verify(await dummy, password.normalize('NFKC')).catch(() => false);
    return false;
  }
  return verify(stored, password.normalize('NFKC')).catch(() => false);
}
