/**
 * Latchkey's users as SCIM Users (RFC 7643 §4.1): what each SCIM attribute means here, how a filter finds people,
 * and what a create, replace or patch changes. Every change goes through the console's own functions — addUser,
 * updateUser, suspendUser, reactivateUser — so SCIM follows the same rules and leaves the same audit records, with
 * the API token as the actor and `via: 'scim'`.
 *
 * | SCIM | Latchkey |
 * |---|---|
 * | id | the user id |
 * | userName, emails (one, work, primary) | the email address (unique, compared case-insensitively) |
 * | name.formatted, or name.givenName + name.familyName, or displayName | the display name |
 * | active | not suspended |
 * | externalId | users.scim_external_id |
 * | latchkey extension: nationalInsuranceNumber | the national identifier's HMAC (write-only, never returned) |
 */
import { apiTokenOf } from '../api/guard.js';
import { OWN_ACCOUNT_MESSAGE } from '../api/schemas.js';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { User } from '../db/schema.js';
import { addUser, checkNewUser, type CheckedNewUser } from '../users/addUser.js';
import { UserInputError } from '../users/createUser.js';
import { nationalIdFormat } from '../users/nationalId.js';
import { reactivateUser, suspendUser } from '../users/suspendUser.js';
import { EmailInUseError, updateUser } from '../users/updateUser.js';
import { scimError } from './scimErrors.js';

/** Latchkey's extension of the User schema: what Latchkey takes that the core schema has no place for. */
export const LATCHKEY_USER_EXTENSION = 'urn:ietf:params:scim:schemas:extension:latchkey:2.0:User';

/** The most Users one list answers with (ServiceProviderConfig filter.maxResults); also the default page size. */
export const SCIM_MAX_RESULTS = 200;

/** Ids Latchkey makes (base64url): anything else names no one, and never reaches a SCIM filter. */
export const USER_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** How SCIMMY's handlers reach the app and request they serve: SCIMMY is one per process, apps are many. */
export interface ScimContext {
  app: FastifyInstance;
  request: FastifyRequest;
  /** A patch hands over the whole resource after its operations: an attribute missing from it was removed. */
  mode: 'create' | 'replace' | 'patch' | 'read' | 'delete';
  /** A failure of Latchkey's own (not a SCIM refusal), kept to be rethrown past SCIMMY, which would call it a 404. */
  failure?: unknown;
}

/** The part of a SCIM User Latchkey reads (SCIMMY has already checked the types against the schema). */
export interface ScimUserIn {
  userName?: string;
  name?: { formatted?: string; givenName?: string; familyName?: string };
  displayName?: string;
  emails?: { value?: string; type?: string; primary?: boolean }[];
  active?: boolean;
  externalId?: string;
  [LATCHKEY_USER_EXTENSION]?: { nationalInsuranceNumber?: string };
}

/** A name split for clients that patch name.givenName or name.familyName alone: the last word is the family name. */
function splitName(displayName: string): { givenName?: string; familyName?: string } {
  const words = displayName.trim().split(/\s+/);
  if (words.length < 2) return { givenName: words[0] };
  return { givenName: words.slice(0, -1).join(' '), familyName: words[words.length - 1] };
}

/** The user as SCIMMY's User schema takes it (SCIMMY adds schemas and meta.location). */
export function toScimUser(user: User): Record<string, unknown> {
  return {
    id: user.id,
    ...(user.scim_external_id !== null ? { externalId: user.scim_external_id } : {}),
    userName: user.email,
    name: { formatted: user.display_name, ...splitName(user.display_name) },
    displayName: user.display_name,
    emails: [{ value: user.email, type: 'work', primary: true }],
    active: user.status !== 'suspended',
    meta: { resourceType: 'User', created: new Date(user.created_at), lastModified: new Date(user.updated_at) },
  };
}

/**
 * Of the ways a SCIM User can say one thing (a name, an address), the one that changes it: the first that differs
 * from what Latchkey holds, in order of precedence. A client that patches only name.givenName sends back every other
 * form unchanged, so the changed one wins; with nothing held yet, the first given.
 */
function chooseChanged(candidates: (string | undefined)[], current: string | undefined): string | undefined {
  const given = candidates.map((c) => c?.trim()).filter((c): c is string => !!c);
  if (current === undefined) return given[0];
  return given.find((c) => c !== current) ?? current;
}

function nameOf(instance: ScimUserIn, current?: string): string | undefined {
  const n = instance.name ?? {};
  const parts = [n.givenName?.trim(), n.familyName?.trim()].filter(Boolean).join(' ');
  return chooseChanged([n.formatted, parts, instance.displayName], current);
}

function emailOf(instance: ScimUserIn, current?: string): string | undefined {
  const emails = instance.emails ?? [];
  const primary = emails.find((e) => e.primary) ?? emails.find((e) => e.type === 'work') ?? emails[0];
  return chooseChanged([instance.userName, primary?.value], current);
}

/** checkNewUser's rules, its problems as one SCIM invalidValue. */
function checkFields(ctx: ScimContext, fields: { name: string | undefined; email: string | undefined; nationalId?: string }): CheckedNewUser {
  const { values, errors } = checkNewUser(nationalIdFormat(ctx.app.latchkey.config), { name: fields.name ?? '', email: fields.email ?? '', nationalId: fields.nationalId });
  if (!fields.name) throw scimError(400, 'invalidValue', 'Send the person’s name: name.formatted, name.givenName and name.familyName, or displayName.');
  if (errors.some((e) => e.field === 'email')) {
    throw scimError(400, 'invalidValue', `userName must be the person’s email address, like name@example.com (it is how they sign in): map the identity provider’s email or user principal name to it. ${errors.find((e) => e.field === 'email')!.message}.`);
  }
  if (errors.length) throw scimError(400, 'invalidValue', errors.map((e) => e.message).join('. ') + '.');
  return values;
}

const USER_EXISTS = 'A user with this userName (email address) already exists. Match on userName eq "…" to find them.';

/** Create (no id) or change (id) a user from a SCIM User; the answer is the user as SCIM shows them. */
export async function writeScimUser(ctx: ScimContext, id: string | undefined, instance: ScimUserIn): Promise<Record<string, unknown>> {
  const { app, request } = ctx;
  const { store, now } = app.latchkey;
  const nationalId = instance[LATCHKEY_USER_EXTENSION]?.nationalInsuranceNumber;
  const externalId = instance.externalId?.trim() || undefined;

  if (id === undefined) {
    const values = checkFields(ctx, { name: nameOf(instance), email: emailOf(instance), nationalId });
    if (await store.users.findByEmail(values.email)) throw scimError(409, 'uniqueness', USER_EXISTS);
    const created = await store
      .transaction(async (tx) => {
        const user = await addUser(app, request, values, 'scim', tx);
        if (externalId) await tx.users.setScimExternalId(user.id, externalId, now());
        return user;
      })
      .catch((error: unknown) => {
        // Another request took the address between the check and the insert.
        throw error instanceof UserInputError ? scimError(409, 'uniqueness', USER_EXISTS) : error;
      });
    // A provider may create someone already disabled (Okta, Entra ID when an account is soft-deleted).
    if (instance.active === false) await suspendUser(app, request, created, 'scim');
    return toScimUser((await store.users.findById(created.id))!);
  }

  const user = await findOtherUser(ctx, id);
  const name = nameOf(instance, user.display_name);
  const email = emailOf(instance, user.email);
  const values = checkFields(ctx, { name, email, nationalId });
  // A replace that leaves externalId out does not assert it (RFC 7644 §3.5.1): kept. A patch that removes it does.
  const scimExternalId = externalId ?? (ctx.mode === 'patch' ? null : undefined);
  try {
    await updateUser(app, request, user, { name: values.name, email: values.email, nationalId: values.nationalId || undefined, scimExternalId }, 'scim');
  } catch (error) {
    if (error instanceof EmailInUseError) throw scimError(409, 'uniqueness', 'Another user already has this userName (email address).');
    throw error;
  }
  // Only a change is acted on: suspending signs the person out, so a replace that repeats active: false must not.
  if (instance.active === false && user.status !== 'suspended') await suspendUser(app, request, user, 'scim');
  if (instance.active === true && user.status === 'suspended') await reactivateUser(app, request, user, 'scim');
  return toScimUser((await store.users.findById(user.id))!);
}

/** DELETE suspends: the person keeps their record and audit trail, and can be reactivated with active: true. */
export async function deleteScimUser(ctx: ScimContext, id: string): Promise<void> {
  const user = await findOtherUser(ctx, id);
  if (user.status !== 'suspended') await suspendUser(ctx.app, ctx.request, user, 'scim');
}

export async function readScimUser(ctx: ScimContext, id: string): Promise<Record<string, unknown>> {
  return toScimUser(await findUser(ctx, id));
}

async function findUser(ctx: ScimContext, id: string): Promise<User> {
  const user = USER_ID_PATTERN.test(id) ? await ctx.app.latchkey.store.users.findById(id) : undefined;
  if (!user) throw scimError(404, undefined, `There is no user with id ${JSON.stringify(id)}. They may never have been provisioned here: search with filter=userName eq "…".`);
  return user;
}

/** The person a change is about, who must not be the one who made the token (as agents never change their own account). */
async function findOtherUser(ctx: ScimContext, id: string): Promise<User> {
  const user = await findUser(ctx, id);
  if (user.id === apiTokenOf(ctx.request).created_by) throw scimError(403, undefined, OWN_ACCOUNT_MESSAGE);
  return user;
}

/** A parsed SCIM filter (SCIMMY's Types.Filter): one object per `or`, attribute → [comparator, value] or a sub-filter. */
type FilterExpression = Record<string, unknown>;

const FILTER_HELP = 'Latchkey filters Users by one attribute with eq: userName, externalId, id or emails.value (for example userName eq "ada@example.com").';

/** The one attribute and value a filter asks for, or invalidFilter. */
function readFilter(filter: readonly FilterExpression[]): { attribute: 'userName' | 'externalId' | 'id' | 'email'; value: unknown } {
  const only = filter.length === 1 ? filter[0]! : undefined;
  const entries = only ? Object.entries(only) : [];
  if (entries.length !== 1) throw scimError(400, 'invalidFilter', FILTER_HELP);
  const [attribute, expression] = entries[0]!;
  const eq = (e: unknown): { value: unknown } | undefined =>
    Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && e[0].toLowerCase() === 'eq' ? { value: e[1] } : undefined;
  switch (attribute.toLowerCase()) {
    case 'username':
    case 'externalid':
    case 'id': {
      const match = eq(expression);
      if (match) return { attribute: ({ username: 'userName', externalid: 'externalId', id: 'id' } as const)[attribute.toLowerCase() as 'username' | 'externalid' | 'id'], value: match.value };
      break;
    }
    case 'emails': {
      // emails.value eq "…", or Entra ID's emails[type eq "work"].value eq "…" (every address here is the work one).
      const sub = (expression && typeof expression === 'object' && !Array.isArray(expression) ? expression : {}) as Record<string, unknown>;
      const keys = Object.keys(sub).map((k) => k.toLowerCase());
      const valueKey = Object.keys(sub).find((k) => k.toLowerCase() === 'value');
      const typeKey = Object.keys(sub).find((k) => k.toLowerCase() === 'type');
      const match = valueKey ? eq(sub[valueKey]) : undefined;
      const type = typeKey ? eq(sub[typeKey]) : undefined;
      if (match && keys.every((k) => k === 'value' || k === 'type') && (!typeKey || type)) {
        return { attribute: 'email', value: type && String(type.value).toLowerCase() !== 'work' ? undefined : match.value };
      }
      break;
    }
  }
  throw scimError(400, 'invalidFilter', FILTER_HELP);
}

/**
 * The users a list asks for: `filter` (parsed by SCIMMY) or everyone, from `startIndex` (1-based), at most `count`,
 * with the total that match. Without a filter the page is read from the name index, as the console's list is.
 */
export async function findScimUsers(ctx: ScimContext, filter: readonly FilterExpression[] | undefined, startIndex: number, count: number): Promise<{ users: User[]; total: number }> {
  const { users } = ctx.app.latchkey.store;
  if (!filter) {
    const [page, total] = await Promise.all([users.search({ offset: startIndex - 1, limit: count }), users.count()]);
    return { users: page.slice(0, count), total };
  }
  const { attribute, value } = readFilter(filter);
  let found: User[] = [];
  if (typeof value === 'string' && value) {
    if (attribute === 'userName' || attribute === 'email') {
      const user = await users.findByEmail(value);
      found = user ? [user] : [];
    } else if (attribute === 'id') {
      const user = USER_ID_PATTERN.test(value) ? await users.findById(value) : undefined;
      found = user ? [user] : [];
    } else {
      // An externalId is one person at one provider; a thousand sharing one is a misconfiguration, not a page to fetch.
      found = await users.findByScimExternalId(value, 1000);
    }
  }
  const total = found.length;
  return { users: found.slice(startIndex - 1, startIndex - 1 + count), total };
}
