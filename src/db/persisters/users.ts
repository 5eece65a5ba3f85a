import { type Kysely, PostgresAdapter, sql } from 'kysely';
import { PreparedQuery, READ } from '../preparedQuery.js';
import type { Database, NewUser, User, UserStatus } from '../schema.js';

// Email-first sign-in runs this (src/db/preparedQuery.ts).
const selectByEmail = new PreparedQuery<{ emailNormalized: string }, User>((db, p) =>
  db.selectFrom('users').selectAll().where('email_normalized', '=', p.emailNormalized),
  READ,
);

// Every refresh and code grant reads the account (oidc-provider's findAccount).
const selectById = new PreparedQuery<{ id: string }, User>((db, p) => db.selectFrom('users').selectAll().where('id', '=', p.id), READ);

/** The user's columns, prefixed, for queries that join a row (session, passkey) to its owner. */
export const joinedUserColumns = [
  'users.email as user_email',
  'users.email_normalized as user_email_normalized',
  'users.display_name as user_display_name',
  'users.status as user_status',
  'users.created_at as user_created_at',
  'users.updated_at as user_updated_at',
  'users.name_search as user_name_search',
  'users.national_id_hash as user_national_id_hash',
  'users.password_hash as user_password_hash',
  'users.failed_signins as user_failed_signins',
  'users.last_failed_signin_at as user_last_failed_signin_at',
  'users.passkey_prompt_skipped_at as user_passkey_prompt_skipped_at',
  'users.scim_external_id as user_scim_external_id',
] as const;

/** The joined user's columns as they come back (user_id stays with the row it belongs to). */
const JOINED_USER_KEYS = new Set(joinedUserColumns.map((c) => c.slice(c.indexOf(' as ') + 4)));

interface JoinedUserFields {
  user_id: string;
  user_email: string;
  user_email_normalized: string;
  user_display_name: string;
  user_status: UserStatus;
  user_created_at: number;
  user_updated_at: number;
  user_name_search: string;
  user_national_id_hash: string | null;
  user_password_hash: string | null;
  user_failed_signins: number;
  user_last_failed_signin_at: number | null;
  user_passkey_prompt_skipped_at: number | null;
  user_scim_external_id: string | null;
}

/** Split a joined row into the owning user and the row's own columns. */
export function splitJoinedUser<T extends JoinedUserFields>(row: T): { own: Omit<T, Exclude<keyof JoinedUserFields, 'user_id'>>; user: User } {
  const user: User = {
    id: row.user_id,
    email: row.user_email,
    email_normalized: row.user_email_normalized,
    display_name: row.user_display_name,
    status: row.user_status,
    created_at: row.user_created_at,
    updated_at: row.user_updated_at,
    name_search: row.user_name_search,
    national_id_hash: row.user_national_id_hash,
    password_hash: row.user_password_hash,
    failed_signins: row.user_failed_signins,
    last_failed_signin_at: row.user_last_failed_signin_at,
    passkey_prompt_skipped_at: row.user_passkey_prompt_skipped_at,
    scim_external_id: row.user_scim_external_id,
  };
  // A plain copy loop: object rest with eleven excluded keys was a measurable part of every sign-in.
  const own: Record<string, unknown> = {};
  for (const key in row) if (!JOINED_USER_KEYS.has(key)) own[key] = row[key];
  return { own: own as Omit<T, Exclude<keyof JoinedUserFields, 'user_id'>>, user };
}

/** Display names are searched by case-insensitive prefix: this is the form the index holds. */
export function normalizeName(name: string): string {
  return name.trim().toLowerCase();
}

/** The smallest string greater than every string that starts with `prefix` (code-point order = UTF-8 byte order). */
export function prefixUpperBound(prefix: string): string {
  const points = Array.from(prefix);
  const last = points.pop()!;
  return points.join('') + String.fromCodePoint(last.codePointAt(0)! + 1);
}

export type UserSearchField = 'name' | 'email' | 'id';

export interface UserSearch {
  /** Case-insensitive prefix of the name or email, or the start of the user id. */
  query?: string;
  status?: UserStatus;
  /** Rows to skip (pages are small and capped, so each index scan stays short). */
  offset: number;
  limit: number;
}

/** Where a {@link UserPersister.searchAfter} page ended: the range (name, email, id) and the row's key in it. */
export interface UserSearchPosition {
  phase: number;
  value: string;
  id: string;
}

type SearchColumn = 'name_search' | 'email_normalized' | 'id';

/** The index ranges a search reads, in order: all users by name without a query; else name, email and id prefixes. */
function userSearchRanges(query: string | undefined): [SearchColumn, string | undefined][] {
  if (!query) return [['name_search', undefined]];
  return [
    ['name_search', normalizeName(query)],
    ['email_normalized', normalizeEmail(query)],
    ['id', query],
  ];
}

/** Email addresses are unique case-insensitively: this is the form the unique index holds. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

export class UserPersister {
  /** PostgreSQL compares text by its locale; prefix ranges need byte order, which "C" gives (SQLite's default). */
  private readonly byteOrder: (column: 'name_search' | 'email_normalized' | 'id') => ReturnType<typeof sql.ref> | ReturnType<typeof sql>;

  constructor(private readonly db: Kysely<Database>) {
    const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
    this.byteOrder = postgres ? (column) => sql`${sql.ref(column)} collate "C"` : (column) => sql.ref(column);
  }

  /**
   * Insert a user. `email_normalized` is always derived from `email` here, so the
   * unique index enforces case-insensitive uniqueness whatever a caller passes.
   * A duplicate address throws an error that `isUniqueViolation` recognizes.
   */
  async insert(user: NewUser): Promise<User> {
    const row = { national_id_hash: null, password_hash: null, failed_signins: 0, last_failed_signin_at: null, passkey_prompt_skipped_at: null, scim_external_id: null, ...user, email_normalized: normalizeEmail(user.email), name_search: normalizeName(user.display_name) };
    await this.db.insertInto('users').values(row).execute();
    return row as User;
  }

  /**
   * Insert many users in one statement (bulk import). A row whose email is already taken — by an earlier user or one
   * added since the caller looked — is left out rather than failing the statement, so a race never half-writes a
   * batch. Returns the ids that were inserted.
   */
  async insertManyNew(users: NewUser[]): Promise<Set<string>> {
    if (!users.length) return new Set();
    const rows = users.map((user) => ({
      national_id_hash: null,
      password_hash: null,
      failed_signins: 0,
      last_failed_signin_at: null,
      passkey_prompt_skipped_at: null,
      ...user,
      email_normalized: normalizeEmail(user.email),
      name_search: normalizeName(user.display_name),
    }));
    const inserted = await this.db
      .insertInto('users')
      .values(rows)
      .onConflict((oc) => oc.column('email_normalized').doNothing())
      .returning('id')
      .execute();
    return new Set(inserted.map((r) => r.id));
  }

  /** Which of these normalised email addresses already belong to a user: one `IN` query (callers batch them). */
  async existingEmails(normalized: readonly string[]): Promise<Set<string>> {
    if (!normalized.length) return new Set();
    const rows = await this.db.selectFrom('users').select('email_normalized').where('email_normalized', 'in', normalized).execute();
    return new Set(rows.map((r) => r.email_normalized));
  }

  findById(id: string): Promise<User | undefined> {
    return selectById.takeFirst(this.db, { id });
  }

  findByEmail(email: string): Promise<User | undefined> {
    return selectByEmail.takeFirst(this.db, { emailNormalized: normalizeEmail(email) });
  }

  async setStatus(id: string, status: UserStatus, now: number): Promise<void> {
    await this.db.updateTable('users').set({ status, updated_at: now }).where('id', '=', id).execute();
  }

  async setDisplayName(id: string, displayName: string, now: number): Promise<void> {
    await this.db.updateTable('users').set({ display_name: displayName, name_search: normalizeName(displayName), updated_at: now }).where('id', '=', id).execute();
  }

  /** Change the address (a unique violation when another user has it, as on insert); the caller audits it. */
  async setEmail(id: string, email: string, now: number): Promise<void> {
    await this.db.updateTable('users').set({ email, email_normalized: normalizeEmail(email), updated_at: now }).where('id', '=', id).execute();
  }

  /** The identity provider's id for the person (SCIM externalId), or null to forget it. */
  async setScimExternalId(id: string, externalId: string | null, now: number): Promise<void> {
    await this.db.updateTable('users').set({ scim_external_id: externalId, updated_at: now }).where('id', '=', id).execute();
  }

  /** People an identity provider provisioned with this externalId (case-sensitive, as RFC 7643 §3.1 says), oldest first. */
  findByScimExternalId(externalId: string, limit: number): Promise<User[]> {
    return this.db.selectFrom('users').selectAll().where('scim_external_id', '=', externalId).orderBy('created_at').orderBy('id').limit(limit).execute();
  }

  async setPasswordHash(id: string, hash: string | null, now: number): Promise<void> {
    await this.db.updateTable('users').set({ password_hash: hash, updated_at: now }).where('id', '=', id).execute();
  }

  /** The person chose "Not now" on "Set up a passkey" at `at` (null: forget it, so they are asked at the next sign-in). */
  async setPasskeyPromptSkippedAt(id: string, at: number | null): Promise<void> {
    await this.db.updateTable('users').set({ passkey_prompt_skipped_at: at }).where('id', '=', id).execute();
  }

  /** One more consecutive failed sign-in; returns the new count. */
  async recordFailedSignin(id: string, now: number): Promise<number> {
    await this.db
      .updateTable('users')
      .set((eb) => ({ failed_signins: eb('failed_signins', '+', 1), last_failed_signin_at: now }))
      .where('id', '=', id)
      .execute();
    const row = await this.db.selectFrom('users').select('failed_signins').where('id', '=', id).executeTakeFirst();
    return row?.failed_signins ?? 0;
  }

  async resetFailedSignins(id: string): Promise<void> {
    await this.db.updateTable('users').set({ failed_signins: 0, last_failed_signin_at: null }).where('id', '=', id).where('failed_signins', '>', 0).execute();
  }

  async setNationalIdHash(id: string, hash: string | null, now: number): Promise<void> {
    await this.db.updateTable('users').set({ national_id_hash: hash, updated_at: now }).where('id', '=', id).execute();
  }

  /**
   * Find users by case-insensitive prefix of name or email, or by the start of
   * their id; optionally only one status. Each field is its own index range
   * scan, read in index order and cut at offset + limit, so a search costs the
   * same at a million users as at a thousand. Name matches come first, then
   * email, then id matches; a user who matches twice is listed once.
   * Returns one row more than `limit` when there is a next page.
   */
  async search(s: UserSearch): Promise<User[]> {
    const want = s.offset + s.limit + 1;
    const base = () => {
      let q = this.db.selectFrom('users').selectAll();
      if (s.status) q = q.where('status', '=', s.status);
      return q;
    };
    const query = s.query?.trim();
    if (!query) {
      return base().orderBy(this.byteOrder('name_search') as any).orderBy('id').offset(s.offset).limit(s.limit + 1).execute();
    }
    const ranges: [UserSearchField, 'name_search' | 'email_normalized' | 'id', string][] = [
      ['name', 'name_search', normalizeName(query)],
      ['email', 'email_normalized', normalizeEmail(query)],
      ['id', 'id', query],
    ];
    const seen = new Set<string>();
    const out: User[] = [];
    for (const [, column, prefix] of ranges) {
      if (!prefix) continue;
      const ordered = this.byteOrder(column);
      const rows = await base()
        .where(ordered as any, '>=', prefix)
        .where(ordered as any, '<', prefixUpperBound(prefix))
        .orderBy(ordered as any)
        .orderBy('id')
        .limit(want)
        .execute();
      for (const row of rows) {
        if (seen.has(row.id)) continue;
        seen.add(row.id);
        out.push(row);
      }
      if (out.length >= want) break;
    }
    return out.slice(s.offset, s.offset + s.limit + 1);
  }

  /**
   * {@link search} a page at a time by position rather than offset (the admin API's cursor): the same matches in the
   * same order — name matches, then email, then id, each in its index order — with each later range leaving out
   * users an earlier range matched, so a user is listed once without remembering who was seen. `after` is the
   * position of the last row of the previous page. Returns one row more than `limit` when there is a next page.
   */
  async searchAfter(s: { query?: string; status?: UserStatus; after?: UserSearchPosition; limit: number }): Promise<{ user: User; position: UserSearchPosition }[]> {
    const query = s.query?.trim();
    const ranges = userSearchRanges(query);
    const out: { user: User; position: UserSearchPosition }[] = [];
    for (let phase = s.after?.phase ?? 0; phase < ranges.length && out.length <= s.limit; phase++) {
      const [column, prefix] = ranges[phase]!;
      const ordered = this.byteOrder(column);
      let q = this.db.selectFrom('users').selectAll();
      if (s.status) q = q.where('status', '=', s.status);
      if (prefix !== undefined) q = q.where(ordered as any, '>=', prefix).where(ordered as any, '<', prefixUpperBound(prefix));
      for (const [earlier, earlierPrefix] of ranges.slice(0, phase)) {
        const e = this.byteOrder(earlier);
        q = q.where((eb) => eb.or([eb(e as any, '<', earlierPrefix!), eb(e as any, '>=', prefixUpperBound(earlierPrefix!))]));
      }
      const after = s.after && s.after.phase === phase ? s.after : undefined;
      if (after) q = q.where((eb) => eb.or([eb(ordered as any, '>', after.value), eb.and([eb(ordered as any, '=', after.value), eb('id', '>', after.id)])]));
      const rows = await q
        .orderBy(ordered as any)
        .orderBy('id')
        .limit(s.limit + 1 - out.length)
        .execute();
      for (const row of rows) out.push({ user: row, position: { phase, value: row[column], id: row.id } });
    }
    return out;
  }

  async list(limit = 100): Promise<User[]> {
    return this.db.selectFrom('users').selectAll().orderBy('created_at', 'asc').limit(limit).execute();
  }

  async count(): Promise<number> {
    const row = await this.db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return Number(row.n);
  }
}
