import type { Kysely } from 'kysely';
import type { Database, NewUser, User, UserStatus } from '../schema.js';

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
