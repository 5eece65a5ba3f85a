import type { Kysely } from 'kysely';
import type { Database, NewUser, User, UserStatus } from '../schema.js';

/** The user's columns, prefixed, for queries that join a row (session, passkey) to its owner. */
export const joinedUserColumns = [
  'users.email as user_email',
  'users.email_normalized as user_email_normalized',
  'users.display_name as user_display_name',
  'users.status as user_status',
  'users.created_at as user_created_at',
  'users.updated_at as user_updated_at',
] as const;

interface JoinedUserFields {
  user_id: string;
  user_email: string;
  user_email_normalized: string;
  user_display_name: string;
  user_status: UserStatus;
  user_created_at: number;
  user_updated_at: number;
}

/** Split a joined row into the owning user and the row's own columns. */
export function splitJoinedUser<T extends JoinedUserFields>(row: T): { own: Omit<T, Exclude<keyof JoinedUserFields, 'user_id'>>; user: User } {
  const { user_email, user_email_normalized, user_display_name, user_status, user_created_at, user_updated_at, ...own } = row;
  const user: User = {
    id: row.user_id,
    email: user_email,
    email_normalized: user_email_normalized,
    display_name: user_display_name,
    status: user_status,
    created_at: user_created_at,
    updated_at: user_updated_at,
  };
  return { own, user };
}

/** Email addresses are unique case-insensitively: this is the form the unique index holds. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

export class UserPersister {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Insert a user. `email_normalized` is always derived from `email` here, so the
   * unique index enforces case-insensitive uniqueness whatever a caller passes.
   * A duplicate address throws an error that `isUniqueViolation` recognizes.
   */
  async insert(user: NewUser): Promise<User> {
    const row = { ...user, email_normalized: normalizeEmail(user.email) };
    await this.db.insertInto('users').values(row).execute();
    return row as User;
  }

  findById(id: string): Promise<User | undefined> {
    return this.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
  }

  findByEmail(email: string): Promise<User | undefined> {
    return this.db.selectFrom('users').selectAll().where('email_normalized', '=', normalizeEmail(email)).executeTakeFirst();
  }

  async setStatus(id: string, status: UserStatus, now: number): Promise<void> {
    await this.db.updateTable('users').set({ status, updated_at: now }).where('id', '=', id).execute();
  }

  async list(limit = 100): Promise<User[]> {
    return this.db.selectFrom('users').selectAll().orderBy('created_at', 'asc').limit(limit).execute();
  }

  async count(): Promise<number> {
    const row = await this.db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return Number(row.n);
  }
}
