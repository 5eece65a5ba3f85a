import type { Kysely } from 'kysely';
import type { Database, EmailTemplate } from '../schema.js';

export type EmailTemplateFields = Pick<EmailTemplate, 'name' | 'subject' | 'body'>;

/** Enrolment email templates; exactly one is the default, which can be edited but never deleted. */
export class EmailTemplatePersister {
  constructor(private readonly db: Kysely<Database>) {}

  list(): Promise<EmailTemplate[]> {
    return this.db.selectFrom('email_templates').selectAll().orderBy('is_default', 'desc').orderBy('name').orderBy('id').execute();
  }

  findById(id: string): Promise<EmailTemplate | undefined> {
    return this.db.selectFrom('email_templates').selectAll().where('id', '=', id).executeTakeFirst();
  }

  findDefault(): Promise<EmailTemplate | undefined> {
    return this.db.selectFrom('email_templates').selectAll().where('is_default', '=', 1).executeTakeFirst();
  }

  async insert(template: EmailTemplate): Promise<void> {
    await this.db.insertInto('email_templates').values(template).execute();
  }

  async update(id: string, fields: EmailTemplateFields, by: string | null, now: number): Promise<boolean> {
    const r = await this.db
      .updateTable('email_templates')
      .set({ ...fields, updated_by: by, updated_at: now })
      .where('id', '=', id)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /** Delete a template unless it is the default; false when nothing was deleted. */
  async delete(id: string): Promise<boolean> {
    const r = await this.db.deleteFrom('email_templates').where('id', '=', id).where('is_default', '=', 0).executeTakeFirst();
    return Number(r.numDeletedRows) === 1;
  }
}
