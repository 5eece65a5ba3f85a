/**
 * oidc-provider's stored models in one table, keyed by (kind, id). The adapter
 * in src/oidc/adapter.ts turns oidc-provider's calls into these; expiry is
 * checked on read, so a row past its time is never returned even before it is
 * pruned.
 */
import type { Kysely } from 'kysely';
import { DURABLE_WRITE, PreparedQuery, READ } from '../preparedQuery.js';
import type { Database } from '../schema.js';

// Every token grant runs these: find the code or refresh token and its grant, consume it, save the new tokens
// (src/db/preparedQuery.ts; BENCHMARKS.md, token endpoint).
type Row = { kind: string; id: string; payload: string; grant_id: string | null; user_code: string | null; uid: string | null; expires_at: number | null };
const upsertModel = new PreparedQuery<Row, never>((db, p) =>
  db
    .insertInto('oidc_models')
    .values({ kind: p.kind, id: p.id, payload: p.payload, grant_id: p.grant_id, user_code: p.user_code, uid: p.uid, expires_at: p.expires_at, consumed_at: null })
    .onConflict((oc) => oc.columns(['kind', 'id']).doUpdateSet({ payload: p.payload, grant_id: p.grant_id, user_code: p.user_code, uid: p.uid, expires_at: p.expires_at })),
  DURABLE_WRITE,
);
const selectModelById = new PreparedQuery<{ kind: string; id: string; now: number }, { payload: string; consumed_at: number | null }>((db, p) =>
  db
    .selectFrom('oidc_models')
    .select(['payload', 'consumed_at'])
    .where('kind', '=', p.kind)
    .where('id', '=', p.id)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', p.now)])),
  READ,
);
const consumeModel = new PreparedQuery<{ kind: string; id: string; at: number }, never>((db, p) =>
  db.updateTable('oidc_models').set({ consumed_at: p.at }).where('kind', '=', p.kind).where('id', '=', p.id).where('consumed_at', 'is', null),
  DURABLE_WRITE,
);

export interface StoredModel {
  kind: string;
  id: string;
  payload: string;
  grantId?: string | null;
  userCode?: string | null;
  uid?: string | null;
  expiresAt: number | null;
}

export interface FoundModel {
  payload: string;
  consumedAt: number | null;
}

export class OidcModelPersister {
  constructor(private readonly db: Kysely<Database>) {}

  /** Insert or replace a model; a replaced model keeps its consumed mark (oidc-provider re-saves consumed codes). */
  async upsert(m: StoredModel): Promise<void> {
    await upsertModel.execute(this.db, {
      kind: m.kind,
      id: m.id,
      payload: m.payload,
      grant_id: m.grantId ?? null,
      user_code: m.userCode ?? null,
      uid: m.uid ?? null,
      expires_at: m.expiresAt,
    });
  }

  private async findWhere(kind: string, column: 'id' | 'uid' | 'user_code', value: string, now: number): Promise<FoundModel | undefined> {
    const row =
      column === 'id'
        ? await selectModelById.takeFirst(this.db, { kind, id: value, now })
        : await this.db
            .selectFrom('oidc_models')
            .select(['payload', 'consumed_at'])
            .where('kind', '=', kind)
            .where(column, '=', value)
            .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
            .executeTakeFirst();
    return row ? { payload: row.payload, consumedAt: row.consumed_at === null ? null : Number(row.consumed_at) } : undefined;
  }

  find(kind: string, id: string, now: number): Promise<FoundModel | undefined> {
    return this.findWhere(kind, 'id', id, now);
  }

  findByUid(kind: string, uid: string, now: number): Promise<FoundModel | undefined> {
    return this.findWhere(kind, 'uid', uid, now);
  }

  findByUserCode(kind: string, userCode: string, now: number): Promise<FoundModel | undefined> {
    return this.findWhere(kind, 'user_code', userCode, now);
  }

  /** Mark consumed; true only for the call that consumed it (a code used twice loses here). */
  async consume(kind: string, id: string, at: number): Promise<boolean> {
    return (await consumeModel.affectedRows(this.db, { kind, id, at })) === 1;
  }

  async destroy(kind: string, id: string): Promise<void> {
    await this.db.deleteFrom('oidc_models').where('kind', '=', kind).where('id', '=', id).execute();
  }

  /** Every model of a grant, whatever its kind (codes, access and refresh tokens …): revoked together. */
  async revokeByGrantId(grantId: string): Promise<number> {
    const r = await this.db.deleteFrom('oidc_models').where('grant_id', '=', grantId).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async deleteExpired(now: number): Promise<number> {
    const r = await this.db.deleteFrom('oidc_models').where('expires_at', '<=', now).executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}
