/**
 * Bearer tokens for the admin API (/api/v1) and SCIM (/scim/v2). A token acts with one console role
 * (src/admin/roles.ts) until it expires or is revoked; only its SHA-256 is stored, so it is shown once, when made.
 */
import { hashToken, randomToken } from '../crypto.js';
import type { ApiToken, Role } from '../db/schema.js';
import type { Store } from '../db/store.js';

/** Days a token lasts when its maker does not say. */
export const API_TOKEN_DEFAULT_DAYS = 90;
/** The longest a token may last: a forgotten integration's token stops working within a year. */
export const API_TOKEN_MAX_DAYS = 365;
export const API_TOKEN_NAME_MAX_LENGTH = 100;
/** What every token starts with, so secret scanners and people can recognise one. */
export const API_TOKEN_PREFIX = 'lk_';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface NewApiToken {
  name: string;
  role: Role;
  days?: number;
  createdBy: string | null;
}

/** A problem with the fields of a new token, in words for the person making it; undefined when they are fine. */
export function checkApiTokenFields(input: { name: string; days?: number }): { field: 'name' | 'days'; message: string } | undefined {
  const name = input.name.trim();
  if (!name) return { field: 'name', message: 'Enter a name for the token, such as the system that will use it' };
  if (name.length > API_TOKEN_NAME_MAX_LENGTH) return { field: 'name', message: `The name must be ${API_TOKEN_NAME_MAX_LENGTH} characters or fewer` };
  const days = input.days ?? API_TOKEN_DEFAULT_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > API_TOKEN_MAX_DAYS) return { field: 'days', message: `A token lasts from 1 to ${API_TOKEN_MAX_DAYS} days` };
  return undefined;
}

/** Make a token in `store` (join the caller's transaction to audit it there); returns the bearer value, shown once. */
export async function createApiToken(store: Store, input: NewApiToken, now: number): Promise<{ token: string; record: ApiToken }> {
  const token = API_TOKEN_PREFIX + randomToken(32);
  const record: ApiToken = {
    id: randomToken(12),
    name: input.name.trim(),
    role: input.role,
    token_hash: hashToken(token),
    created_by: input.createdBy,
    created_at: now,
    expires_at: now + (input.days ?? API_TOKEN_DEFAULT_DAYS) * DAY_MS,
    revoked_at: null,
    last_used_at: null,
  };
  await store.apiTokens.insert(record);
  return { token, record };
}

/** The token a bearer value names, when it is still good (not expired, not revoked). */
export async function findUsableApiToken(store: Store, bearer: string, now: number): Promise<ApiToken | undefined> {
  if (!bearer.startsWith(API_TOKEN_PREFIX) || bearer.length > 200) return undefined;
  const record = await store.apiTokens.findByHash(hashToken(bearer));
  if (!record || record.revoked_at !== null || record.expires_at <= now) return undefined;
  return record;
}

/** Active, Expired or Revoked, as the console and CLI list them. */
export function apiTokenStatus(token: ApiToken, now: number): 'active' | 'expired' | 'revoked' {
  if (token.revoked_at !== null) return 'revoked';
  return token.expires_at <= now ? 'expired' : 'active';
}
