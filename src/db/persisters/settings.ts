import type { Kysely } from 'kysely';
import type { Database } from '../schema.js';

export class SettingsPersister {
  constructor(private readonly db: Kysely<Database>) {}

  async get(key: string): Promise<string | undefined> {
    const row = await this.db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
    return row?.value;
  }

  /** Store `value` unless the key is already set; returns whichever value won. */
  async getOrInsert(key: string, value: string): Promise<string> {
    await this.db.insertInto('settings').values({ key, value }).onConflict((oc) => oc.column('key').doNothing()).execute();
    return (await this.get(key))!;
  }

  /** Replace the value only if it is still `expected`: of instances that read the same value, exactly one gets true. */
  async swap(key: string, expected: string, value: string): Promise<boolean> {
    const r = await this.db.updateTable('settings').set({ value }).where('key', '=', key).where('value', '=', expected).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /** Store `value` under `key`, replacing what was there. */
  async set(key: string, value: string): Promise<void> {
    await this.db.insertInto('settings').values({ key, value }).onConflict((oc) => oc.column('key').doUpdateSet({ value })).execute();
  }
}
