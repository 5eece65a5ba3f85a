import type { Kysely } from 'kysely';
import type { Database, UserImport, UserImportState } from '../schema.js';

/** Bulk imports started in the console: the check, the running job's progress and the report (migration 0012). */
export class UserImportPersister {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(row: UserImport): Promise<void> {
    await this.db.insertInto('user_imports').values(row).execute();
  }

  findById(id: string): Promise<UserImport | undefined> {
    return this.db.selectFrom('user_imports').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** Checked → running, once: of two confirmations (a double click, two tabs) only one starts the job. */
  async start(id: string, now: number): Promise<boolean> {
    const result = await this.db
      .updateTable('user_imports')
      .set({ state: 'running', updated_at: now })
      .where('id', '=', id)
      .where('state', '=', 'checked')
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /** One more batch written: in the batch's own transaction, so the progress bar never runs ahead of the data. */
  async addProgress(id: string, batch: { done: number; created: number; skipped: number }, now: number): Promise<void> {
    await this.db
      .updateTable('user_imports')
      .set((eb) => ({
        done: eb('done', '+', batch.done),
        created: eb('created', '+', batch.created),
        skipped: eb('skipped', '+', batch.skipped),
        updated_at: now,
      }))
      .where('id', '=', id)
      .execute();
  }

  /** The report of a running job (its phase, mails sent so far); a late write after the job ended changes nothing. */
  async setReport(id: string, report: string, now: number): Promise<void> {
    await this.db.updateTable('user_imports').set({ report, updated_at: now }).where('id', '=', id).where('state', '=', 'running').execute();
  }

  /** The job ended: its report, and the plan (validated rows) dropped. */
  async finish(id: string, state: Extract<UserImportState, 'done' | 'failed'>, report: string, now: number): Promise<void> {
    await this.db.updateTable('user_imports').set({ state, report, plan: null, updated_at: now, finished_at: now }).where('id', '=', id).execute();
  }

  /** Forget the validated rows of checks nobody confirmed since `before` (they hold HMACs of national identifiers). */
  async dropUnconfirmed(before: number): Promise<number> {
    const result = await this.db.deleteFrom('user_imports').where('state', '=', 'checked').where('updated_at', '<', before).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
