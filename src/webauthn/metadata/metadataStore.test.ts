/**
 * Importing FIDO metadata into a running app, on SQLite and PostgreSQL: what is
 * kept and used, what is refused (and that the previous BLOB stays), what
 * doctor reports, and the notice to owners of a model newly marked
 * compromised — by a real SMTP sink, once.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/support/app.js';
import { testDatabases } from '../../../test/support/databases.js';
import { blobEntry, blobPayload, createMdsSigner, dayFromNow, metadataStatement, signMdsBlob, writeTestRoot } from '../../../test/support/mdsBlob.js';
import { startSmtpSink, type SmtpSink } from '../../../test/support/smtpSink.js';
import { doctorReport } from '../../oidc/doctor.js';
import { addService } from '../../oidc/services.js';
import { createUser } from '../../users/createUser.js';
import { DEFAULT_POLICY } from '../authenticatorPolicy.js';
import { POLICY_SETTING } from '../trust.js';
import { importMetadataBlob, type MetadataDeps } from './metadataStore.js';
import { MetadataBlobRefused } from './verifyMetadataBlob.js';

const databases = await testDatabases();
const dir = mkdtempSync(join(tmpdir(), 'latchkey-mds-store-'));
const fido = createMdsSigner('Test FIDO');
const rootFile = writeTestRoot(join(dir, 'root.pem'), fido.root);

const KEY = metadataStatement({ aaguid: 'aaaaaaaa-1111-4222-8333-444444444444', description: 'Test Security Key 5', attestationRootCertificates: [fido.root.der] });
const OTHER = metadataStatement({ aaguid: 'cccccccc-1111-4222-8333-444444444444', description: 'Other Key', attestationRootCertificates: [fido.root.der] });

let sink: SmtpSink;
beforeAll(async () => {
  sink = await startSmtpSink();
});
afterAll(async () => {
  await sink.close();
  rmSync(dir, { recursive: true, force: true });
});

function depsOf(t: TestApp): MetadataDeps {
  const { store, trust, config, mailer, now } = t.app.latchkey;
  return { store, trust, config, mailer, now, log: t.app.log };
}

async function refusalOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof MetadataBlobRefused) return err.message;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe.each(databases)('FIDO metadata import on $name', (target) => {
  describe.skipIf(target.skipReason !== undefined)(target.skipReason ?? 'import', () => {
    let t: TestApp;
    beforeEach(async () => {
      const db = await target.open();
      await db.migrate();
      t = await createTestApp({ LATCHKEY_FIDO_METADATA_ROOT: rootFile, LATCHKEY_SMTP_URL: sink.url, LATCHKEY_ORGANISATION: 'Northwick NHS Trust' }, { db });
      sink.clear();
      return () => t.close();
    });
    afterAll(() => target.cleanup());

    it('keeps and uses a good BLOB, records it, and doctor reports its serial, dates, entries and source', async () => {
      const { store, trust } = t.app.latchkey;
      const before = await doctorReport(t.config, store, Date.now(), { provider: t.app.latchkey.oidc });
      expect(before.text).toContain('  BLOB                   none loaded: no passkey can reach AAL3 until one is imported');
      expect(before.text).toContain(`  root                   ${rootFile}`);
      // A service that needs AAL3 with no metadata: no one can sign in to it, which doctor says.
      await addService(store, t.app.latchkey.secretBox, { name: 'Records', redirectUris: ['https://records.example/cb'], postLogoutRedirectUris: [], clientType: 'confidential', aal: 3, firstParty: true }, Date.now());
      expect((await doctorReport(t.config, store, Date.now(), { provider: t.app.latchkey.oidc })).warnings).toContain(
        'service "Records" needs AAL3, but no FIDO metadata is loaded, so no one can sign in to it: import it with `latchkey metadata import FILE` or set LATCHKEY_FIDO_METADATA_URL',
      );

      const blob = signMdsBlob(fido, blobPayload(42, [blobEntry(KEY, ['FIDO_CERTIFIED_L1', 'FIDO_CERTIFIED_L2']), blobEntry(OTHER)]));
      const imported = await importMetadataBlob(depsOf(t), blob, 'blob.jwt');
      expect(imported).toEqual({ serial: 42, nextUpdate: dayFromNow(30), entries: 2, newlyCompromised: [], passkeysFlagged: 0 });
      expect(trust.metadata().serial).toBe(42);
      expect(trust.metadata().get(KEY.aaguid!)).toMatchObject({ description: 'Test Security Key 5', certification: 'FIDO_CERTIFIED_L2' });
      expect(await store.fidoMetadata.current()).toMatchObject({ serial: 42, next_update: dayFromNow(30), entries: 2, source: 'blob.jwt', blob });
      expect((await store.audit.listByEvent('metadata.imported', 5)).map((e) => JSON.parse(e.detail))).toEqual([{ serial: 42, nextUpdate: dayFromNow(30), entries: 2, source: 'blob.jwt' }]);

      const after = await doctorReport(t.config, store, Date.now(), { provider: t.app.latchkey.oidc });
      expect(after.text).toMatch(/^ {2}serial {17}42$/m);
      expect(after.text).toMatch(new RegExp(`^ {2}next update {12}${dayFromNow(30)}$`, 'm'));
      expect(after.text).toMatch(/^ {2}entries {16}2$/m);
      expect(after.text).toMatch(/^ {2}source {17}blob\.jwt$/m);
      expect(after.text).toMatch(/^ {2}imported {15}\d{4}-\d\d-\d\dT/m);
      expect(after.warnings.join('\n')).not.toContain('FIDO metadata');
      expect(after.warnings.join('\n')).not.toContain('needs AAL3');
      // Stale once its nextUpdate has passed: a warning that says what to do.
      const later = await doctorReport(t.config, store, Date.now() + 32 * 86_400_000, { provider: t.app.latchkey.oidc });
      expect(later.warnings).toContain(`the FIDO metadata BLOB (serial 42) is stale: its next update was due ${dayFromNow(30)}; import the current one with \`latchkey metadata import FILE\``);
    });

    it('refuses a foreign root, a bad signature, a stale or not-newer BLOB, and keeps the previous one each time', async () => {
      const { store, trust } = t.app.latchkey;
      const good = signMdsBlob(fido, blobPayload(5, [blobEntry(KEY)]));
      await importMetadataBlob(depsOf(t), good, 'five.jwt');
      const [header, , signature] = signMdsBlob(fido, blobPayload(6, [blobEntry(KEY)])).split('.');
      const attempts: [string, string, RegExp][] = [
        ['foreign root', signMdsBlob(createMdsSigner('Impostor'), blobPayload(6, [blobEntry(KEY)])), /does not chain to the FIDO metadata root/],
        ['bad signature', `${header}.${Buffer.from(JSON.stringify(blobPayload(6, [blobEntry(KEY, ['REVOKED'])]))).toString('base64url')}.${signature}`, /signature is not valid/],
        ['stale', signMdsBlob(fido, blobPayload(6, [blobEntry(KEY)], dayFromNow(-2))), /is stale/],
        ['same serial', signMdsBlob(fido, blobPayload(5, [blobEntry(OTHER)])), /its serial number is 5, the one in use is 5/],
        ['older serial', signMdsBlob(fido, blobPayload(4, [blobEntry(OTHER)])), /its serial number is 4, the one in use is 5/],
        ['not a JWT', 'hello', /not a FIDO metadata BLOB/],
      ];
      for (const [name, blob, message] of attempts) {
        expect(await refusalOf(importMetadataBlob(depsOf(t), blob, `${name}.jwt`)), name).toMatch(message);
        expect(await store.fidoMetadata.current(), name).toMatchObject({ serial: 5, blob: good, source: 'five.jwt' });
        expect(trust.metadata().serial, name).toBe(5);
        expect(trust.metadata().get(OTHER.aaguid!), name).toBeUndefined();
      }
      const refused = await store.audit.listByEvent('metadata.refused', 10);
      expect(refused).toHaveLength(attempts.length);
      expect(refused.every((e) => e.outcome === 'refused')).toBe(true);
      expect(JSON.parse(refused.at(-1)!.detail)).toMatchObject({ source: 'foreign root.jwt', reason: expect.stringMatching(/does not chain/) });
    });

    it('tells the owners of passkeys of a model newly marked compromised, by email and in the audit log, once', async () => {
      const { store } = t.app.latchkey;
      const at = Date.now();
      const ada = await createUser(store, { email: `ada-${randomBytes(4).toString('hex')}@example.org`, displayName: 'Ada Lovelace' }, at);
      const bob = await createUser(store, { email: `bob-${randomBytes(4).toString('hex')}@example.org`, displayName: 'Bob Ross' }, at);
      const passkey = (id: string, userId: string, aaguid: string, name: string) =>
        store.authenticators.insert({
          id,
          user_id: userId,
          type: 'passkey',
          credential_id: randomBytes(16).toString('base64url'),
          public_key: 'pk',
          counter: 0,
          transports: '["usb"]',
          aaguid,
          backup_eligible: 0,
          backed_up: 0,
          attestation_format: 'packed',
          config: JSON.stringify({ attestation: { verified: true, model: 'Test Security Key 5' } }),
          name,
          created_at: at,
          last_used_at: null,
          issued_by: null,
        });
      const adasKey = `k-${randomBytes(6).toString('hex')}`;
      const bobsKey = `k-${randomBytes(6).toString('hex')}`;
      await passkey(adasKey, ada.id, KEY.aaguid!, 'Blue key');
      await passkey(bobsKey, bob.id, OTHER.aaguid!, 'Red key');
      // Each signed in with their key at AAL3; Ada also has a session that rests on nothing of that model.
      const session = (userId: string, authenticatorId: string | null) => ({
        id_hash: randomBytes(16).toString('base64url'),
        public_id: randomBytes(8).toString('base64url'),
        user_id: userId,
        created_at: at,
        last_seen_at: at,
        authenticated_at: at,
        expires_at: at + 3_600_000,
        aal: authenticatorId ? 3 : 2,
        ip: '192.0.2.1',
        user_agent: 'test',
        authenticator_id: authenticatorId,
      });
      const adasSession = session(ada.id, adasKey);
      const adasOther = session(ada.id, null);
      const bobsSession = session(bob.id, bobsKey);
      for (const s of [adasSession, adasOther, bobsSession]) await store.sessions.insert(s);

      await importMetadataBlob(depsOf(t), signMdsBlob(fido, blobPayload(1, [blobEntry(KEY), blobEntry(OTHER)])), 'one.jwt');
      expect(sink.messages).toHaveLength(0);

      const revoked = await importMetadataBlob(depsOf(t), signMdsBlob(fido, blobPayload(2, [blobEntry(KEY, ['FIDO_CERTIFIED_L1', 'REVOKED']), blobEntry(OTHER)])), 'two.jwt');
      expect(revoked.newlyCompromised.map((e) => e.aaguid)).toEqual([KEY.aaguid]);
      expect(revoked.passkeysFlagged).toBe(1);
      const events = await store.audit.listByEvent('passkey.model_compromised', 10);
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ subject_user_id: ada.id, authenticator_id: adasKey, actor_user_id: null, outcome: 'success' });
      expect(JSON.parse(events[0]!.detail)).toMatchObject({ model: 'Test Security Key 5', status: 'REVOKED', action: 'no-aal3', sessions: 1 });
      // Her sign-in with the key is no longer AAL3; her other session and Bob's are as they were.
      expect((await store.sessions.findByHash(adasSession.id_hash))?.aal).toBe(2);
      expect((await store.sessions.findByHash(adasOther.id_hash))?.aal).toBe(2);
      expect((await store.sessions.findByHash(bobsSession.id_hash))?.aal).toBe(3);
      expect(sink.messages).toHaveLength(1);
      const mail = sink.messages[0]!;
      expect(mail.to).toEqual([ada.email]);
      expect(mail.subject).toBe('A security problem was reported with one of your security keys or passkeys');
      expect(mail.text).toContain('Hello Ada Lovelace,');
      expect(mail.text).toContain('has reported a security problem with one model: its certification was revoked. It affects one of the passkeys on your Northwick NHS Trust profile:');
      expect(mail.text).toContain('"Blue key" (Test Security Key 5), added ');
      expect(mail.text).toContain('It no longer counts for services that need the highest level of assurance (AAL3).');
      expect(mail.text).toContain('What to do: contact your registration authority to get a new security key.');

      // The same status in the next BLOB is not news.
      const again = await importMetadataBlob(depsOf(t), signMdsBlob(fido, blobPayload(3, [blobEntry(KEY, ['FIDO_CERTIFIED_L1', 'REVOKED']), blobEntry(OTHER)])), 'three.jwt');
      expect(again.newlyCompromised).toEqual([]);
      expect(await store.audit.listByEvent('passkey.model_compromised', 10)).toHaveLength(1);
      expect(sink.messages).toHaveLength(1);

      // A policy that refuses compromised models, saved (as on another instance) before the next import: the notice says so.
      await store.settings.set(POLICY_SETTING, JSON.stringify({ ...DEFAULT_POLICY, compromised: 'refuse' }));
      await importMetadataBlob(depsOf(t), signMdsBlob(fido, blobPayload(4, [blobEntry(KEY, ['REVOKED']), blobEntry(OTHER, ['FIDO_CERTIFIED_L1', 'USER_VERIFICATION_BYPASS'])])), 'four.jwt');
      const bobs = await store.audit.listByEvent('passkey.model_compromised', 10);
      expect(bobs).toHaveLength(2);
      expect(bobs[0]).toMatchObject({ subject_user_id: bob.id, authenticator_id: bobsKey });
      expect(JSON.parse(bobs[0]!.detail)).toMatchObject({ model: 'Other Key', status: 'USER_VERIFICATION_BYPASS', action: 'refuse', sessions: 1 });
      // Refused: the sessions signed in with Bob's key are over.
      expect(await store.sessions.findByHash(bobsSession.id_hash)).toBeUndefined();
      expect(await store.sessions.findByHash(adasSession.id_hash)).toBeDefined();
      expect(sink.messages).toHaveLength(2);
      expect(sink.messages[1]!.to).toEqual([bob.email]);
      expect(sink.messages[1]!.text).toContain('its PIN or fingerprint check can be bypassed');
      expect(sink.messages[1]!.text).toContain('It can no longer be used to sign in.');
    });
  });
});
