import type { Kysely } from 'kysely';
import { PreparedQuery, READ } from '../preparedQuery.js';
import type { Database, Service } from '../schema.js';

// oidc-provider looks the client up on every request to the token endpoint (src/db/preparedQuery.ts).
const selectService = new PreparedQuery<{ clientId: string }, Service>((db, p) => db.selectFrom('services').selectAll().where('client_id', '=', p.clientId), READ);

export class ServicePersister {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(service: Service): Promise<void> {
    await this.db.insertInto('services').values(service).execute();
  }

  find(clientId: string): Promise<Service | undefined> {
    return selectService.takeFirst(this.db, { clientId });
  }

  list(): Promise<Service[]> {
    return this.db.selectFrom('services').selectAll().orderBy('name').orderBy('client_id').execute();
  }

  async remove(clientId: string): Promise<boolean> {
    const r = await this.db.deleteFrom('services').where('client_id', '=', clientId).executeTakeFirst();
    return Number(r.numDeletedRows) === 1;
  }
}
