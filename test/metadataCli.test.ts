/**
 * `latchkey metadata import FILE`, run in this process like test/cli.test.ts:
 * what it prints, its exit codes, and that a refused BLOB leaves the previous
 * one in the database (where `doctor` reads it).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/main.js';
import { openDatabase } from '../src/db/connect.js';
import { createStore } from '../src/db/store.js';
import { blobEntry, blobPayload, createMdsSigner, dayFromNow, metadataStatement, signMdsBlob, writeTestRoot } from './support/mdsBlob.js';

const dir = mkdtempSync(join(tmpdir(), 'latchkey-metadata-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const fido = createMdsSigner('Test FIDO');
const env = {
  DATABASE_URL: `sqlite:${join(dir, 'cli.db')}`,
  LATCHKEY_SECRET_KEY_FILE: join(dir, 'secret.key'),
  LATCHKEY_FIDO_METADATA_ROOT: writeTestRoot(join(dir, 'root.pem'), fido.root),
  LATCHKEY_OUTBOX_DIR: join(dir, 'outbox'),
  LOG_LEVEL: 'silent',
};
const KEY = metadataStatement({ aaguid: 'aaaaaaaa-1111-4222-8333-444444444444', description: 'Test Security Key 5', attestationRootCertificates: [fido.root.der] });
const OTHER = metadataStatement({ aaguid: 'cccccccc-1111-4222-8333-444444444444', description: 'Other Key' });

async function cli(args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { stdout: { write: (text: string) => (stdout += text) }, stderr: { write: (text: string) => (stderr += text) }, env: { ...process.env, ...env } });
  return { code, stdout, stderr };
}

function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

async function kept() {
  const db = openDatabase(env.DATABASE_URL);
  try {
    return await createStore(db).fidoMetadata.summary();
  } finally {
    await db.close();
  }
}

describe('latchkey metadata import', () => {
  it('imports a good BLOB, prints its serial, next update and entry count, and refuses worse ones keeping it', async () => {
    const good = file('good.jwt', signMdsBlob(fido, blobPayload(12, [blobEntry(KEY), blobEntry(OTHER)])));
    const imported = await cli(['metadata', 'import', good]);
    expect(imported.stderr).toBe('Running servers use it within a minute.\n');
    expect(imported.code).toBe(0);
    expect(imported.stdout).toBe(`Imported FIDO metadata: serial 12, next update ${dayFromNow(30)}, 2 entries.\n`);
    expect(await kept()).toMatchObject({ serial: 12, entries: 2, source: 'good.jwt' });

    const doctor = await cli(['doctor']);
    expect(doctor.stdout).toMatch(/^ {2}serial {17}12$/m);
    expect(doctor.stdout).toMatch(/^ {2}source {17}good\.jwt$/m);

    const again = await cli(['metadata', 'import', good]);
    expect(again.code).toBe(1);
    expect(again.stdout).toBe('');
    expect(again.stderr).toBe(`latchkey: refused ${good}: the BLOB is not newer than the one in use: its serial number is 12, the one in use is 12. The FIDO metadata in use is unchanged.\n`);

    const stale = file('stale.jwt', signMdsBlob(fido, blobPayload(13, [blobEntry(KEY)], dayFromNow(-3))));
    expect((await cli(['metadata', 'import', stale])).stderr).toContain(`the BLOB is stale: its nextUpdate (${dayFromNow(-3)}) has passed`);
    const foreign = file('foreign.jwt', signMdsBlob(createMdsSigner('Impostor'), blobPayload(13, [blobEntry(KEY)])));
    const refused = await cli(['metadata', 'import', foreign]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('does not chain to the FIDO metadata root (LATCHKEY_FIDO_METADATA_ROOT)');
    expect(await kept()).toMatchObject({ serial: 12, source: 'good.jwt' });

    // A newer BLOB marking a model compromised says so.
    const revoked = file('revoked.jwt', signMdsBlob(fido, blobPayload(13, [blobEntry(KEY, ['REVOKED']), blobEntry(OTHER)])));
    const next = await cli(['metadata', 'import', revoked]);
    expect(next.code).toBe(0);
    expect(next.stdout).toBe(`Imported FIDO metadata: serial 13, next update ${dayFromNow(30)}, 2 entries.\nNewly marked REVOKED: Test Security Key 5 (${KEY.aaguid}).\n`);
  });

  it('says what it needs when the file is missing or not given', async () => {
    const missing = await cli(['metadata', 'import', join(dir, 'nope.jwt')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`latchkey: cannot read ${join(dir, 'nope.jwt')} (ENOENT)\n`);
    expect((await cli(['metadata', 'import'])).stderr).toContain('metadata import needs one FILE');
    expect((await cli(['metadata', 'fetch'])).stderr).toContain('unknown metadata command "fetch"');
    const badRoot = await runCli(['metadata', 'import', 'x'], { stdout: { write: () => true }, stderr: { write: () => true }, env: { ...process.env, ...env, LATCHKEY_FIDO_METADATA_ROOT: join(dir, 'none.pem') } });
    expect(badRoot).toBe(2);
  });
});
