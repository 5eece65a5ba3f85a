/**
 * What the admin API's resource plugins share: the error shape of every refusal, the cursor that pages lists, the
 * user as JSON, and loading the person a request is about (404 when unknown; the token's maker's own account
 * refused for changes, as the console refuses an agent's own).
 */
import type { FastifyRequest } from 'fastify';
import { Type, type TSchema } from 'typebox';
import { appError, errorCatalogue, type ErrorCode } from '../errors.js';
import type { User } from '../db/schema.js';
import type { Role } from '../admin/roles.js';
import { Id } from '../http/schemas.js';
import { apiTokenOf } from './guard.js';

/** `{ error: { code, message, fields? } }`: every 4xx and 5xx of the API (src/errors.ts, src/plugins/errorHandler.ts). */
export function ApiError(description = 'An error') {
  return Type.Object(
    {
      error: Type.Object({
        code: Type.String({ description: 'Stable: what went wrong (src/errors.ts)' }),
        message: Type.String({ description: 'For people: what went wrong and what to do' }),
        fields: Type.Optional(Type.Array(Type.Object({ field: Type.String(), message: Type.String() }), { description: 'Each field that was not right, named as in the request' })),
      }),
    },
    { description },
  );
}

/**
 * The error responses an operation may give, by status, each described by the codes it can carry. Every operation has
 * 401 (no usable token), 403 (the token's role does not allow it) and 400 (the request is not valid).
 */
export function errorResponses(...codes: ErrorCode[]): Record<number, TSchema> {
  const byStatus = new Map<number, Set<string>>();
  for (const code of ['validation_failed', 'api_token_required', 'api_token_invalid', 'forbidden', ...codes] as ErrorCode[]) {
    const status = errorCatalogue[code].status;
    if (!byStatus.has(status)) byStatus.set(status, new Set());
    byStatus.get(status)!.add(code);
  }
  const out: Record<number, TSchema> = {};
  for (const [status, set] of byStatus) out[status] = ApiError(`Error codes: ${[...set].join(', ')}`);
  return out;
}

/** Labels for validation messages on API routes (errorHandler.ts `fieldLabels`): fields named as in the request. */
export function fieldLabels(labels: Record<string, string>): Record<string, string> {
  return { id: 'The id in the path', cursor: 'cursor', limit: 'limit', ...labels };
}

export const UserPath = Type.Object({ id: Id });

export const Limit = Type.Integer({ minimum: 1, maximum: 100, default: 25, description: 'Items per page (1 to 100, default 25)' });
export const Cursor = Type.String({ minLength: 1, maxLength: 400, pattern: '^[A-Za-z0-9_-]+$', description: 'The `nextCursor` of the previous page' });

/** A page of `item`: `nextCursor` is null on the last page. */
export function Page(item: TSchema, description: string) {
  return Type.Object(
    { items: Type.Array(item), nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `cursor` for the next page; null on the last page' }) },
    { description },
  );
}

/** An opaque cursor: the position after the last item, as JSON in base64url (never a secret, never an offset). */
export function encodeCursor(position: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(position)).toString('base64url');
}

/** The position a cursor holds, checked against `shape` (one type per element); a cursor that is not one is 400. */
export function decodeCursor<T extends readonly ('string' | 'number')[]>(cursor: string, shape: T): { [K in keyof T]: T[K] extends 'number' ? number : string } {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  if (!Array.isArray(value) || value.length !== shape.length || !value.every((v, i) => typeof v === shape[i])) {
    throw appError('validation_failed', 'That cursor is not valid: ask for the first page again, without a cursor.', [{ field: 'cursor', message: 'That cursor is not valid: ask for the first page again, without a cursor' }]);
  }
  return value as { [K in keyof T]: T[K] extends 'number' ? number : string };
}

const isoTime = (description: string) => Type.String({ format: 'date-time', description });

export const UserJson = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    email: Type.String(),
    status: Type.Union([Type.Literal('pending'), Type.Literal('enrolled'), Type.Literal('suspended')], {
      description: 'pending: no authenticator yet; enrolled: has one; suspended: cannot sign in',
    }),
    hasNationalInsuranceNumber: Type.Boolean({ description: 'Whether a national identifier is recorded (only its HMAC is kept: it is never shown)' }),
    roles: Type.Array(Type.String(), { description: 'Registration-authority roles (GET /api/v1/roles)' }),
    createdAt: isoTime('When the user was added'),
    updatedAt: isoTime('When the user last changed'),
  },
  { description: 'A person' },
);

export function userJson(user: User, roles: readonly Role[]) {
  return {
    id: user.id,
    name: user.display_name,
    email: user.email,
    status: user.status,
    hasNationalInsuranceNumber: user.national_id_hash !== null,
    roles: [...roles],
    createdAt: new Date(user.created_at).toISOString(),
    updatedAt: new Date(user.updated_at).toISOString(),
  };
}

export function iso(time: number | null | undefined): string | null {
  return time === null || time === undefined ? null : new Date(time).toISOString();
}

/** The person a route is about, or 404 `user_not_found`. */
export async function loadUser(request: FastifyRequest, id: string): Promise<User> {
  const user = await request.server.latchkey.store.users.findById(id);
  if (!user) throw appError('user_not_found');
  return user;
}

export const OWN_ACCOUNT_MESSAGE =
  'This token was made by this person, and a token cannot change its maker’s own account (as the console does not let agents change their own). Use a token made by someone else.';

/**
 * The person a change is about, who must not be the person who made the token (api_tokens.created_by): the console's
 * rule that agents never change their own roles, status or authenticators holds through the tokens they make too.
 */
export async function loadOtherUser(request: FastifyRequest, id: string): Promise<User> {
  const user = await loadUser(request, id);
  if (user.id === apiTokenOf(request).created_by) throw appError('own_account', OWN_ACCOUNT_MESSAGE);
  return user;
}
