/**
 * Adding a person, as the console, the admin API, SCIM and bulk import all do it: one check of the fields (name,
 * email, national identifier) and one transaction that creates the Pending user, keeps the identifier's HMAC and
 * audits it. Callers differ only in how they show the problems.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { audit } from '../audit.js';
import type { FieldError } from '../errors.js';
import type { User } from '../db/schema.js';
import type { Store } from '../db/store.js';
import { createUser } from './createUser.js';
import { checkEmailAddress } from './emailAddress.js';
import { hashNationalId, type NationalIdFormat } from './nationalId.js';

/** The longest display name Latchkey keeps (createUser refuses longer ones too). */
export const NAME_MAX_LENGTH = 100;

export interface NewUserFields {
  name: string;
  email: string;
  /** As typed (spaces, lower case); empty or absent for none. */
  nationalId?: string;
}

/** The fields trimmed and normalised, ready for {@link addUser}: `nationalId` is the normalised value or ''. */
export interface CheckedNewUser {
  name: string;
  email: string;
  nationalId: string;
}

/** Check a new person's fields; every problem is named at its field (`name`, `email`, `nationalId`). */
export function checkNewUser(format: NationalIdFormat, fields: NewUserFields): { values: CheckedNewUser; errors: FieldError[] } {
  const name = fields.name.trim();
  const email = fields.email.trim();
  const errors: FieldError[] = [];
  if (!name) errors.push({ field: 'name', message: 'Enter the person’s full name' });
  else if (name.length > NAME_MAX_LENGTH) errors.push({ field: 'name', message: `The name must be ${NAME_MAX_LENGTH} characters or fewer` });
  const emailProblem = checkEmailAddress(email);
  if (emailProblem) errors.push({ field: 'email', message: emailProblem });
  const nationalId = fields.nationalId?.trim() ? format.normalise(fields.nationalId) : '';
  const idProblem = nationalId ? format.check(nationalId) : undefined;
  if (idProblem) errors.push({ field: 'nationalId', message: idProblem });
  return { values: { name, email, nationalId }, errors };
}

export const USER_EXISTS_MESSAGE = 'A user with this email address already exists';

/**
 * Create the person in `tx` (or a transaction of its own): Pending, with the identifier's HMAC, audited as
 * `user.created` with `via` (console, api, scim, import). Throws UserInputError (createUser.ts) when the email is taken.
 */
export async function addUser(
  app: FastifyInstance,
  request: FastifyRequest | null,
  values: CheckedNewUser,
  via: string,
  tx?: Store,
): Promise<User> {
  const { store, secret, now } = app.latchkey;
  const run = async (t: Store) => {
    const at = now();
    const created = await createUser(t, { email: values.email, displayName: values.name }, at);
    const nationalIdHash = values.nationalId ? hashNationalId(secret, values.nationalId) : null;
    if (nationalIdHash) await t.users.setNationalIdHash(created.id, nationalIdHash, at);
    await audit(app, request, { event: 'user.created', subjectUserId: created.id, detail: { nationalId: !!values.nationalId, via } }, t);
    return { ...created, national_id_hash: nationalIdHash };
  };
  return tx ? run(tx) : store.transaction(run);
}
