/**
 * Changing a person's details (name, email address, national identifier, the identity provider's id for them) in
 * one transaction with one audit record, `user.updated`, naming the fields that changed (never their values) and
 * how (`via`). SCIM's replace and patch use it; the values must already have passed {@link checkNewUser}.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { audit } from '../audit.js';
import { isUniqueViolation } from '../db/isUniqueViolation.js';
import type { User } from '../db/schema.js';
import type { Store } from '../db/store.js';
import { hashNationalId } from './nationalId.js';

/** The new address belongs to someone else (checked first, and settled by the unique index in a race). */
export class EmailInUseError extends Error {
  constructor() {
    super('A user with this email address already exists');
    this.name = 'EmailInUseError';
  }
}

export interface UserChanges {
  name?: string;
  email?: string;
  /** Normalised; '' is not a value here (leave it out to keep the recorded one). */
  nationalId?: string;
  /** The SCIM client's externalId; null forgets it. */
  scimExternalId?: string | null;
}

/** Apply what differs from `user`; returns the fields that changed (none: nothing written, nothing audited). */
export async function updateUser(app: FastifyInstance, request: FastifyRequest | null, user: User, changes: UserChanges, via: string, tx?: Store): Promise<string[]> {
  const { store, secret, now } = app.latchkey;
  const run = async (t: Store) => {
    const changed: string[] = [];
    const at = now();
    if (changes.name !== undefined && changes.name !== user.display_name) {
      await t.users.setDisplayName(user.id, changes.name, at);
      changed.push('name');
    }
    if (changes.email !== undefined && changes.email !== user.email) {
      const holder = await t.users.findByEmail(changes.email);
      if (holder && holder.id !== user.id) throw new EmailInUseError();
      await t.users.setEmail(user.id, changes.email, at).catch((error: unknown) => {
        throw isUniqueViolation(error) ? new EmailInUseError() : error;
      });
      changed.push('email');
    }
    if (changes.nationalId) {
      const hash = hashNationalId(secret, changes.nationalId);
      if (hash !== user.national_id_hash) {
        await t.users.setNationalIdHash(user.id, hash, at);
        changed.push('nationalId');
      }
    }
    if (changes.scimExternalId !== undefined && changes.scimExternalId !== user.scim_external_id) {
      await t.users.setScimExternalId(user.id, changes.scimExternalId, at);
      changed.push('externalId');
    }
    if (changed.length) await audit(app, request, { event: 'user.updated', subjectUserId: user.id, detail: { fields: changed, via } }, t);
    return changed;
  };
  return tx ? run(tx) : store.transaction(run);
}
