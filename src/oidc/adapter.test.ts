/** The adapter's contract with oidc-provider, on SQLite and PostgreSQL. */
import { errors } from 'oidc-provider';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from '../../test/support/databases.js';
import { createStore, type Store } from '../db/store.js';
import { SecretBox } from '../secretBox.js';
import { KyselyAdapter, SERVICE_AAL } from './adapter.js';
import { addService } from './services.js';

const databases = await testDatabases();
const secretBox = new SecretBox({ secretKey: Buffer.alloc(32, 7), secretKeyFile: '/nonexistent' });

/** A secret box that counts the values it opens. */
class CountingSecretBox extends SecretBox {
  opened = 0;
  override open(sealed: string, context: string): string {
    this.opened++;
    return super.open(sealed, context);
  }
}

describe.each(databases)('oidc adapter on $name', (target) => {
  describe.skipIf(target.skipReason !== undefined)(target.skipReason ?? 'adapter', () => {
    let store: Store;
    let clock = 1_750_000_000_000;
    const adapter = (kind: string) => new KyselyAdapter(kind, store, secretBox, () => clock);
    beforeAll(async () => {
      const db = await target.open();
      await db.migrate();
      store = createStore(db);
    });
    afterAll(() => target.cleanup());

    it('stores a model until it expires; consume marks it (seconds) for oidc-provider to refuse a second use', async () => {
      const codes = adapter('AuthorizationCode');
      await codes.upsert('c1', { accountId: 'u', grantId: 'g1', codeChallenge: 'x' }, 60);
      expect(await codes.find('c1')).toEqual({ accountId: 'u', grantId: 'g1', codeChallenge: 'x' });
      await codes.consume('c1');
      expect((await codes.find('c1'))?.consumed).toBe(Math.floor(clock / 1000));
      clock += 61_000;
      expect(await codes.find('c1')).toBeUndefined();
    });

    it('of two consumes at once, one spends the code; the other is refused as a second use and revokes its grant', async () => {
      await adapter('Grant').upsert('g3', { accountId: 'u' }, 600);
      await adapter('AuthorizationCode').upsert('c3', { accountId: 'u', grantId: 'g3' }, 60);
      await adapter('AccessToken').upsert('a3', { grantId: 'g3' }, 600);
      const results = await Promise.allSettled([adapter('AuthorizationCode').consume('c3'), adapter('AuthorizationCode').consume('c3')]);
      expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
      const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(refused.reason).toBeInstanceOf(errors.InvalidGrant);
      expect(await adapter('AccessToken').find('a3')).toBeUndefined();
      expect(await adapter('Grant').find('g3')).toBeUndefined();
      // One that is not there (deleted meanwhile) is refused too, and revokes nothing.
      await adapter('Grant').upsert('g4', { accountId: 'u' }, 600);
      await expect(adapter('AuthorizationCode').consume('gone')).rejects.toBeInstanceOf(errors.InvalidGrant);
      expect(await adapter('Grant').find('g4')).toBeDefined();
    });

    it('a pushed authorization request used twice at once: the second is an invalid request_uri, as oidc-provider says of a used one', async () => {
      await adapter('PushedAuthorizationRequest').upsert('p1', { request: 'x' }, 60);
      const results = await Promise.allSettled([adapter('PushedAuthorizationRequest').consume('p1'), adapter('PushedAuthorizationRequest').consume('p1')]);
      const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(refused.reason).toBeInstanceOf(errors.InvalidRequestUri);
    });

    it('finds sessions by uid and device codes by user code; revokes a grant across kinds', async () => {
      await adapter('Session').upsert('s1', { uid: 'uid-1', accountId: 'u' }, 600);
      expect(await adapter('Session').findByUid('uid-1')).toMatchObject({ accountId: 'u' });
      await adapter('DeviceCode').upsert('d1', { userCode: 'ABCD-EFGH', grantId: 'g2' }, 600);
      expect(await adapter('DeviceCode').findByUserCode('ABCD-EFGH')).toMatchObject({ grantId: 'g2' });
      await adapter('RefreshToken').upsert('r1', { grantId: 'g2' }, 600);
      await adapter('AccessToken').upsert('a1', { grantId: 'g2' }, 600);
      await adapter('AccessToken').revokeByGrantId('g2');
      expect(await adapter('RefreshToken').find('r1')).toBeUndefined();
      expect(await adapter('DeviceCode').find('d1')).toBeUndefined();
      await adapter('Session').destroy('s1');
      expect(await adapter('Session').find('s1')).toBeUndefined();
    });

    it('reads clients from services (secret opened from the box) and refuses to write them', async () => {
      const { service, clientSecret } = await addService(store, secretBox, { name: 'Rota', redirectUris: ['https://rota.example/cb'], clientType: 'confidential', aal: 2, firstParty: false }, clock);
      const found = await adapter('Client').find(service.client_id);
      expect(found).toMatchObject({ client_id: service.client_id, client_secret: clientSecret, redirect_uris: ['https://rota.example/cb'], token_endpoint_auth_method: 'client_secret_basic', [SERVICE_AAL]: 2 });
      expect(await adapter('Client').find('nobody')).toBeUndefined();
      await expect(adapter('Client').upsert('x', {})).rejects.toThrow(/services add/);
      const pub = await addService(store, secretBox, { name: 'Kiosk', redirectUris: ['https://kiosk.example/cb'], clientType: 'public', aal: 1, firstParty: true }, clock);
      expect(await adapter('Client').find(pub.service.client_id)).toMatchObject({ token_endpoint_auth_method: 'none' });
      expect((await adapter('Client').find(pub.service.client_id))?.client_secret).toBeUndefined();
    });

    it('opens a service’s secret again only when its row changed, and sees a change or removal at the next find', async () => {
      const counting = new CountingSecretBox({ secretKey: Buffer.alloc(32, 7), secretKeyFile: '/nonexistent' });
      const clients = new KyselyAdapter('Client', store, counting, () => clock);
      const { service } = await addService(store, counting, { name: 'Ward', redirectUris: ['https://ward.example/cb'], clientType: 'confidential', aal: 1, firstParty: true }, clock);
      const first = await clients.find(service.client_id);
      expect(await clients.find(service.client_id)).toBe(first);
      expect(counting.opened).toBe(1);
      expect(Object.isFrozen(first) && Object.isFrozen(first?.redirect_uris)).toBe(true);
      // Changed by another instance (here, straight in the table): the next find reads the new row.
      const resealed = counting.seal('a-new-secret', `service-secret:${service.client_id}`);
      await store.kysely.updateTable('services').set({ client_secret: resealed, redirect_uris: JSON.stringify(['https://ward.example/new']) }).where('client_id', '=', service.client_id).execute();
      expect(await clients.find(service.client_id)).toMatchObject({ client_secret: 'a-new-secret', redirect_uris: ['https://ward.example/new'] });
      expect(counting.opened).toBe(2);
      await store.services.remove(service.client_id);
      expect(await clients.find(service.client_id)).toBeUndefined();
    });

    it('keeps as many services as it is told, dropping the one found least recently', async () => {
      const counting = new CountingSecretBox({ secretKey: Buffer.alloc(32, 7), secretKeyFile: '/nonexistent' });
      const clients = new KyselyAdapter('Client', store, counting, () => clock, 2);
      const ids: string[] = [];
      for (const name of ['One', 'Two', 'Three']) {
        ids.push((await addService(store, counting, { name, redirectUris: ['https://kept.example/cb'], clientType: 'confidential', aal: 1, firstParty: true }, clock)).service.client_id);
      }
      const [one, two, three] = ids as [string, string, string];
      await clients.find(one);
      await clients.find(two);
      await clients.find(one); // one is now the more recent of the two
      await clients.find(three); // drops two
      expect(counting.opened).toBe(3);
      await clients.find(one);
      await clients.find(three);
      expect(counting.opened).toBe(3);
      await clients.find(two);
      expect(counting.opened).toBe(4);
    });
  });
});
