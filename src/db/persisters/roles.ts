import type { Kysely } from 'kysely';
import type { Database, Role } from '../schema.js';

/** Registration-authority roles held by users (a user may hold several). */
export class RolePersister {
  constructor(private readonly db: Kysely<Database>) {}

  async listForUser(userId: string): Promise<Role[]> {
    const rows = await this.db.selectFrom('roles').select('role').where('user_id', '=', userId).orderBy('role').execute();
    return rows.map((r) => r.role);
  }

  /** Replace a user's roles with `roles`; returns what was added and removed. */
  async set(userId: string, roles: Role[], grantedBy: string | null, now: number): Promise<{ added: Role[]; removed: Role[] }> {
    const current = await this.listForUser(userId);
    const added = roles.filter((r) => !current.includes(r));
    const removed = current.filter((r) => !roles.includes(r));
    if (removed.length) await this.db.deleteFrom('roles').where('user_id', '=', userId).where('role', 'in', removed).execute();
    if (added.length) {
      await this.db
        .insertInto('roles')
        .values(added.map((role) => ({ user_id: userId, role, granted_by: grantedBy, granted_at: now })))
        .execute();
    }
    return { added, removed };
  }

  /** Grant roles to users who hold none yet (bulk import's new users): one multi-row insert. */
  async grantMany(grants: { userId: string; role: Role }[], grantedBy: string | null, now: number): Promise<void> {
    if (!grants.length) return;
    await this.db
      .insertInto('roles')
      .values(grants.map((g) => ({ user_id: g.userId, role: g.role, granted_by: grantedBy, granted_at: now })))
      .execute();
  }

  async count(role: Role): Promise<number> {
    const row = await this.db
      .selectFrom('roles')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('role', '=', role)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }
}
