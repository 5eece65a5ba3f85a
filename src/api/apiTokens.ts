/**
 * Bearer tokens for the admin API (/api/v1) and SCIM (/scim/v2). A token acts with one console role
 * (src/admin/roles.ts) until it expires or is revoked; only its SHA-256 is stored, so it is shown once, when made.
 */
import { hashToken, randomToken } from '../crypto.js';
import type { ApiToken, Role } from '../db/schema.js';
import type { Store } from '../db/store.js';
import { can } from '../admin/roles.js';

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

/** A problem with a new token's name, in words for the person making it; undefined when it is fine. */
export function checkApiTokenName(name: string): string | undefined {
  const trimmed = name.trim();
  if (!trimmed) return 'Enter a name for the token, such as the system that will use it';
  if (trimmed.length > API_TOKEN_NAME_MAX_LENGTH) return `The name must be ${API_TOKEN_NAME_MAX_LENGTH} characters or fewer`;
  return undefined;
}

/** A problem with how many days a new token lasts; undefined when it is fine. */
export function checkApiTokenDays(days: number): string | undefined {
  if (!Number.isInteger(days) || days < 1 || days > API_TOKEN_MAX_DAYS) return `A token lasts from 1 to ${API_TOKEN_MAX_DAYS} days`;
  return undefined;
}

/** The first problem with the fields of a new token (the CLI reports one at a time); undefined when they are fine. */
export function checkApiTokenFields(input: { name: string; days?: number }): { field: 'name' | 'days'; message: string } | undefined {
  const name = checkApiTokenName(input.name);
  if (name) return { field: 'name', message: name };
  const days = checkApiTokenDays(input.days ?? API_TOKEN_DEFAULT_DAYS);
  return days ? { field: 'days', message: days } : undefined;
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

/**
 * Writes one audit record in the caller's transaction: the CLI writes it with no actor, the console with the agent and
 * the request it came from. What the record says (event, detail) is decided here, once.
 */
export type ApiTokenAuditWriter = (tx: Store, record: { event: 'api_token.created' | 'api_token.revoked'; detail: Record<string, unknown> }) => Promise<void>;

/**
 * Make a token and its audit record (id, name, role, expiry: never the token) in one transaction; `alongside` joins
 * that transaction too (the console seals the token there for its one showing). The console and the CLI both call this.
 */
export async function issueApiToken(
  store: Store,
  input: NewApiToken & { via: 'cli' | 'console' },
  now: number,
  options: { audit: ApiTokenAuditWriter; alongside?: (tx: Store, made: { token: string; record: ApiToken }) => Promise<void> },
): Promise<{ token: string; record: ApiToken }> {
  return store.transaction(async (tx) => {
    const made = await createApiToken(tx, input, now);
    const { record } = made;
    await options.audit(tx, {
      event: 'api_token.created',
      detail: { tokenId: record.id, name: record.name, role: record.role, expiresAt: new Date(record.expires_at).toISOString(), via: input.via },
    });
    await options.alongside?.(tx, made);
    return made;
  });
}

/**
 * Revoke a token and record it in one transaction: the token it was, `already` when it was revoked before (nothing is
 * recorded then), or undefined when there is no such token.
 */
export async function revokeApiToken(store: Store, id: string, now: number, options: { via: 'cli' | 'console'; audit: ApiTokenAuditWriter }): Promise<ApiToken | 'already' | undefined> {
  return store.transaction(async (tx) => {
    const token = await tx.apiTokens.findById(id);
    if (!token) return undefined;
    if (!(await tx.apiTokens.revoke(id, now))) return 'already';
    await options.audit(tx, { event: 'api_token.revoked', detail: { tokenId: id, name: token.name, role: token.role, via: options.via } });
    return { ...token, revoked_at: now };
  });
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

/**
 * Whether the person who made a token still answers for it: not suspended, and still allowed to make tokens (an RA
 * Manager). A token made on the command line (no maker) answers to no one but its expiry and revocation.
 */
export async function makerStillHolds(store: Store, token: ApiToken): Promise<boolean> {
  if (!token.created_by) return true;
  const maker = await store.users.findById(token.created_by);
  if (!maker || maker.status === 'suspended') return false;
  return can(await store.roles.listForUser(maker.id), 'api_tokens.manage');
}
