import type { Kysely } from 'kysely';
import type { Database, FidoMetadataRow } from '../schema.js';

/** The FIDO metadata BLOB in use: one row, replaced only by a higher serial. */
export class FidoMetadataPersister {
  constructor(private readonly db: Kysely<Database>) {}

  /** Serial and dates without the BLOB itself (for doctor, and to see whether another instance imported a newer one). */
  async summary(): Promise<Omit<FidoMetadataRow, 'blob'> | undefined> {
    return this.db.selectFrom('fido_metadata').select(['id', 'serial', 'next_update', 'entries', 'source', 'imported_at']).where('id', '=', 'current').executeTakeFirst();
  }

  async current(): Promise<FidoMetadataRow | undefined> {
    return this.db.selectFrom('fido_metadata').selectAll().where('id', '=', 'current').executeTakeFirst();
  }

  /**
   * Keep `row` as the BLOB in use unless one with the same or a higher serial is already kept (FIDO MDS3 §3.1.8:
   * ignore a BLOB whose number is not greater than the last one's). Returns whether it was kept.
   */
  async replace(row: Omit<FidoMetadataRow, 'id'>): Promise<boolean> {
    const result = await this.db
      .insertInto('fido_metadata')
      .values({ id: 'current', ...row })
      .onConflict((oc) => oc.column('id').doUpdateSet(row).where('fido_metadata.serial', '<', row.serial))
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
  }
}
