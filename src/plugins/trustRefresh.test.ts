/**
 * The trust refresh plugin against a local HTTP server standing in for the
 * FIDO Metadata Service (never the network), and two instances sharing one
 * database, on SQLite and PostgreSQL.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp } from '../../test/support/app.js';
import { testDatabases } from '../../test/support/databases.js';
import { blobEntry, blobPayload, createMdsSigner, dayFromNow, metadataStatement, signMdsBlob, writeTestRoot } from '../../test/support/mdsBlob.js';
import { doctorReport } from '../oidc/doctor.js';
import { DEFAULT_POLICY } from '../webauthn/authenticatorPolicy.js';
import { importMetadataBlob } from '../webauthn/metadata/metadataStore.js';
import { POLICY_SETTING } from '../webauthn/trust.js';
import { METADATA_MAX_AGE_MS, metadataDownloadDue, refreshMetadataFromUrl } from './trustRefresh.js';

const databases = await testDatabases();
const dir = mkdtempSync(join(tmpdir(), 'latchkey-trust-refresh-'));
const fido = createMdsSigner('Test FIDO');
const rootFile = writeTestRoot(join(dir, 'root.pem'), fido.root);
const KEY = metadataStatement({ aaguid: 'aaaaaaaa-1111-4222-8333-444444444444', description: 'Test Security Key 5', attestationRootCertificates: [fido.root.der] });

/** What the stand-in metadata service answers next, and how many times it was asked. */
let answer: { status: number; body: string } = { status: 404, body: '' };
let requests = 0;
let server: Server;
let url: string;
beforeAll(async () => {
  server = createServer((req, res) => {
    requests++;
    res.writeHead(answer.status, { 'content-type': 'application/jwt' }).end(answer.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/?token=not-for-logs`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

const serve = (no: number, nextUpdate = dayFromNow(30)) => (answer = { status: 200, body: signMdsBlob(fido, blobPayload(no, [blobEntry(KEY)], nextUpdate)) });

async function until(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('metadataDownloadDue', () => {
  const now = Date.parse('2027-03-10T12:00:00Z');
  it('downloads when nothing is kept, on and after nextUpdate, and when the last download is a day old', () => {
    expect(metadataDownloadDue(undefined, undefined, now)).toBe(true);
    expect(metadataDownloadDue({ next_update: '2027-03-10', imported_at: now - 1000 }, undefined, now)).toBe(true);
    expect(metadataDownloadDue({ next_update: '2027-03-11', imported_at: now - 1000 }, undefined, now)).toBe(false);
    expect(metadataDownloadDue({ next_update: '2027-03-11', imported_at: now - METADATA_MAX_AGE_MS }, undefined, now)).toBe(true);
    expect(metadataDownloadDue({ next_update: '2027-03-11', imported_at: now - METADATA_MAX_AGE_MS }, now - 60_000, now)).toBe(false);
  });
});

describe.each(databases)('trust refresh on $name', (target) => {
  describe.skipIf(target.skipReason !== undefined)(target.skipReason ?? 'refresh', () => {
    afterAll(() => target.cleanup());

    it('downloads the BLOB at start from LATCHKEY_FIDO_METADATA_URL, then imports only a newer good one and keeps it through failures', async () => {
      const db = await target.open();
      await db.migrate();
      serve(1);
      requests = 0;
      const t = await createTestApp({ LATCHKEY_FIDO_METADATA_ROOT: rootFile, LATCHKEY_FIDO_METADATA_URL: url }, { db });
      try {
        const { store, trust } = t.app.latchkey;
        await until('the start download', async () => trust.metadata().serial === 1 && (await store.fidoMetadata.summary())?.serial === 1);
        expect(requests).toBe(1);
        const source = url.replace(/\?.*$/, '');
        expect((await store.fidoMetadata.summary())?.source).toBe(source);
        const doctor = await doctorReport(t.config, store, Date.now(), { provider: t.app.latchkey.oidc });
        expect(doctor.text).toContain(`  download from          ${source}`);
        expect(doctor.text).toMatch(/^ {2}serial {17}1$/m);
        expect(doctor.text).not.toContain('not-for-logs');

        const warnings: string[] = [];
        const log = { warn: (_obj: object, msg: string) => void warnings.push(msg), info: () => {} };
        const deps = { store, trust, config: t.config, mailer: t.app.latchkey.mailer, now: Date.now, log };
        // The same BLOB again: nothing to do, nothing to warn about or audit.
        expect(await refreshMetadataFromUrl(deps, url)).toEqual({ outcome: 'unchanged', serial: 1 });
        serve(2, dayFromNow(-1));
        expect(await refreshMetadataFromUrl(deps, url)).toMatchObject({ outcome: 'failed', reason: expect.stringContaining('is stale') });
        answer = { status: 503, body: 'busy' };
        expect(await refreshMetadataFromUrl(deps, url)).toMatchObject({ outcome: 'failed', reason: `could not download the FIDO metadata BLOB from ${source}: the server answered HTTP 503` });
        answer = { status: 200, body: signMdsBlob(createMdsSigner('Impostor'), blobPayload(2, [blobEntry(KEY)])) };
        expect(await refreshMetadataFromUrl(deps, url)).toMatchObject({ outcome: 'failed', reason: expect.stringContaining('does not chain') });
        expect(warnings).toHaveLength(3);
        expect(warnings.every((w) => w.endsWith('the previous one stays in use') && !w.includes('not-for-logs'))).toBe(true);
        expect(trust.metadata().serial).toBe(1);
        expect((await store.fidoMetadata.summary())?.serial).toBe(1);
        expect(await store.audit.listByEvent('metadata.refused', 10)).toHaveLength(2);

        serve(3);
        expect(await refreshMetadataFromUrl(deps, url)).toEqual({ outcome: 'imported', serial: 3 });
        expect(trust.metadata().serial).toBe(3);
      } finally {
        await t.close();
      }
    });

    it('without a URL, nothing is downloaded; with one, a kept BLOB that is current is not downloaded again at start', async () => {
      const db = await target.open();
      await db.migrate();
      serve(1);
      requests = 0;
      const first = await createTestApp({ LATCHKEY_FIDO_METADATA_ROOT: rootFile }, { db });
      await first.close();
      expect(requests).toBe(0);
      const withUrl = await createTestApp({ LATCHKEY_FIDO_METADATA_ROOT: rootFile, LATCHKEY_FIDO_METADATA_URL: url }, { db });
      await until('the start download', () => withUrl.app.latchkey.trust.metadata().serial === 1);
      await withUrl.close();
      const again = await createTestApp({ LATCHKEY_FIDO_METADATA_ROOT: rootFile, LATCHKEY_FIDO_METADATA_URL: url }, { db });
      // Closing waits for the start check, so a download it made would be counted by now.
      await again.close();
      expect(requests).toBe(1);
    });

    it('two instances downloading the same new BLOB at once: one imports it, the other finds nothing to do', async () => {
      const db = await target.open({ poolSize: 4 });
      await db.migrate();
      const env = { LATCHKEY_FIDO_METADATA_ROOT: rootFile };
      const apps = [await createTestApp(env, { db }), await createTestApp(env, { db })];
      try {
        serve(4);
        const warnings: string[] = [];
        const log = { warn: (_obj: object, msg: string) => void warnings.push(msg), info: () => {} };
        const outcomes = await Promise.all(
          apps.map(({ app }) => refreshMetadataFromUrl({ store: app.latchkey.store, trust: app.latchkey.trust, config: app.latchkey.config, mailer: app.latchkey.mailer, now: Date.now, log }, url)),
        );
        expect(outcomes.map((o) => o.outcome).sort()).toEqual(['imported', 'unchanged']);
        expect(warnings).toEqual([]);
        expect(await apps[0]!.app.latchkey.store.audit.listByEvent('metadata.imported', 5)).toHaveLength(1);
      } finally {
        for (const a of apps) await a.close();
      }
    });

    it('another instance picks up a BLOB imported elsewhere and a policy saved elsewhere within LATCHKEY_TRUST_RELOAD_SECONDS', async () => {
      const db = await target.open();
      await db.migrate();
      const env = { LATCHKEY_FIDO_METADATA_ROOT: rootFile, LATCHKEY_TRUST_RELOAD_SECONDS: '1' };
      const a = await createTestApp(env, { db });
      const b = await createTestApp(env, { db });
      try {
        const { store, trust, config, mailer } = a.app.latchkey;
        await importMetadataBlob({ store, trust, config, mailer, now: Date.now, log: a.app.log }, signMdsBlob(fido, blobPayload(9, [blobEntry(KEY)])), 'cli.jwt');
        await store.settings.set(POLICY_SETTING, JSON.stringify({ ...DEFAULT_POLICY, compromised: 'refuse' }));
        expect(b.app.latchkey.trust.metadata().serial).toBe(0);
        await until('instance b to reload', () => b.app.latchkey.trust.metadata().serial === 9 && b.app.latchkey.trust.policy().compromised === 'refuse', 5_000);
        expect(b.app.latchkey.trust.metadata().get(KEY.aaguid!)?.description).toBe('Test Security Key 5');
      } finally {
        await a.close();
        await b.close();
      }
    });
  });
});
