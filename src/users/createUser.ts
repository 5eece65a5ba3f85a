import { randomToken } from '../crypto.js';
import { normalizeEmail } from '../db/persisters/users.js';
import type { User } from '../db/schema.js';
import { isUniqueViolation } from '../db/isUniqueViolation.js';
import type { Store } from '../db/store.js';
import { isEmailAddress } from './emailAddress.js';

export class UserInputError extends Error {}

/** Create a Pending user (no passkey yet). Used by the CLI and, later, the registration-authority console. */
export async function createUser(store: Store, input: { email: string; displayName: string }, now: number): Promise<User> {
  const email = input.email.trim();
  const displayName = input.displayName.trim();
  if (!isEmailAddress(email)) throw new UserInputError(`not a valid email address: "${input.email}"`);
  if (!displayName || displayName.length > 100) throw new UserInputError('the name must be 1 to 100 characters');
  if (await store.users.findByEmail(email)) throw new UserInputError(`a user with the email ${email} already exists`);
  return store.users
    .insert({
    id: randomToken(16),
    email,
    email_normalized: normalizeEmail(email),
    display_name: displayName,
    status: 'pending',
    created_at: now,
    updated_at: now,
    })
    .catch((error: unknown) => {
      if (isUniqueViolation(error)) throw new UserInputError(`a user with the email ${email} already exists`);
      throw error;
    });
}
