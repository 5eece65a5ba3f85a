import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { blobEntry, blobPayload, createMdsSigner, dayFromNow, metadataStatement, pemOf, signMdsBlob, writeTestRoot } from '../../../test/support/mdsBlob.js';
import { issueCertificate } from '../../../test/support/x509.js';
import { DEFAULT_FIDO_METADATA_ROOT } from '../../config/index.js';
import { MetadataBlobRefused, readMetadataRoots, verifyMetadataBlob } from './verifyMetadataBlob.js';

const dir = mkdtempSync(join(tmpdir(), 'latchkey-mds-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const fido = createMdsSigner('Test FIDO');
const roots = [pemOf(fido.root)];
const KEY = metadataStatement({ aaguid: 'aaaaaaaa-1111-4222-8333-444444444444', description: 'Test Security Key', attestationRootCertificates: [fido.root.der] });
const SYNCED = metadataStatement({ aaguid: 'bbbbbbbb-1111-4222-8333-444444444444', description: 'Test Synced Passkey', attestationTypes: ['none'] });
const now = Date.now();

async function refusal(blob: string, keptSerial = 0, rootsUsed = roots): Promise<string> {
  try {
    await verifyMetadataBlob(blob, { roots: rootsUsed, signer: 'mds.fidoalliance.org', keptSerial, now });
  } catch (err) {
    expect(err).toBeInstanceOf(MetadataBlobRefused);
    return (err as Error).message;
  }
  throw new Error('expected a refusal');
}

describe('verifyMetadataBlob', () => {
  it('accepts a BLOB signed by a certificate that chains to the root, and returns its FIDO2 entries', async () => {
    const blob = signMdsBlob(fido, blobPayload(7, [blobEntry(KEY, ['FIDO_CERTIFIED_L1', 'FIDO_CERTIFIED_L2']), blobEntry(SYNCED, ['NOT_FIDO_CERTIFIED']), { aaid: '4e4e#4005', statusReports: [], timeOfLastStatusChange: '' }]));
    const { catalogue, payload } = await verifyMetadataBlob(`${blob}\n`, { roots, signer: 'mds.fidoalliance.org', keptSerial: 6, now });
    expect(payload.no).toBe(7);
    expect(catalogue.serial).toBe(7);
    // The UAF entry (aaid, no AAGUID) is not a FIDO2 authenticator.
    expect(catalogue.size).toBe(2);
    expect(catalogue.get(KEY.aaguid!.toUpperCase())).toMatchObject({ description: 'Test Security Key', certification: 'FIDO_CERTIFIED_L2', compromised: undefined });
    expect(catalogue.get(SYNCED.aaguid!)?.certification).toBeUndefined();
  });

  it('refuses a BLOB whose signing certificate chains to another root', async () => {
    const other = createMdsSigner('Impostor');
    expect(await refusal(signMdsBlob(other, blobPayload(1, [blobEntry(KEY)])))).toBe(
      'the BLOB\'s signing certificate does not chain to the FIDO metadata root (LATCHKEY_FIDO_METADATA_ROOT)',
    );
    // Nor does the real FIDO root accept a test BLOB.
    expect(await refusal(signMdsBlob(fido, blobPayload(1, [blobEntry(KEY)])), 0, readMetadataRoots(DEFAULT_FIDO_METADATA_ROOT))).toContain('does not chain');
  });

  it('refuses a BLOB signed by another certificate the same public root issued (not the FIDO Alliance’s signer)', async () => {
    const other = issueCertificate({ subject: { C: 'US', O: 'Someone Else', CN: 'evil.example' }, issuer: fido.root });
    const blob = signMdsBlob({ root: fido.root, signer: other }, blobPayload(8, [blobEntry(KEY)]));
    expect(await refusal(blob)).toBe('the BLOB is signed by "evil.example", not by "mds.fidoalliance.org" (LATCHKEY_FIDO_METADATA_SIGNER)');
  });

  it('refuses a BLOB changed after it was signed, or signed by another key than its certificate\'s', async () => {
    const blob = signMdsBlob(fido, blobPayload(1, [blobEntry(KEY)]));
    const [header, , signature] = blob.split('.');
    const forged = Buffer.from(JSON.stringify(blobPayload(1, [blobEntry(KEY, ['FIDO_CERTIFIED_L3plus'])]))).toString('base64url');
    expect(await refusal(`${header}.${forged}.${signature}`)).toMatch(/^the BLOB's signature is not valid/);

    // A certificate from the right root whose key did not sign: its x5c claims a signer it isn't.
    const impostorKey = issueCertificate({ subject: { CN: 'Not the signer' }, issuer: fido.root });
    const swapped = signMdsBlob({ root: fido.root, signer: { ...impostorKey, der: fido.signer.der } }, blobPayload(1, [blobEntry(KEY)]));
    expect(await refusal(swapped)).toMatch(/^the BLOB's signature is not valid/);
  });

  it('refuses a stale BLOB (nextUpdate before today) but accepts one due today', async () => {
    expect(await refusal(signMdsBlob(fido, blobPayload(3, [blobEntry(KEY)], dayFromNow(-1))))).toBe(
      `the BLOB is stale: its nextUpdate (${dayFromNow(-1)}) has passed; download the current one`,
    );
    const today = await verifyMetadataBlob(signMdsBlob(fido, blobPayload(3, [blobEntry(KEY)], dayFromNow(0))), { roots, signer: 'mds.fidoalliance.org', keptSerial: 0, now });
    expect(today.catalogue.nextUpdate).toBe(dayFromNow(0));
  });

  it('refuses a serial number that is not greater than the one in use', async () => {
    const blob = signMdsBlob(fido, blobPayload(5, [blobEntry(KEY)]));
    expect(await refusal(blob, 5)).toBe('the BLOB is not newer than the one in use: its serial number is 5, the one in use is 5');
    expect(await refusal(blob, 9)).toContain('its serial number is 5, the one in use is 9');
  });

  it('refuses what is not a BLOB, with a message that says what was expected', async () => {
    expect(await refusal('{"no": 1}')).toMatch(/^this is not a FIDO metadata BLOB: expected a JWT/);
    expect(await refusal('a.b.c')).toMatch(/^this is not a FIDO metadata BLOB/);
    const unsigned = `${Buffer.from('{"alg":"ES256"}').toString('base64url')}.${Buffer.from(JSON.stringify(blobPayload(1, []))).toString('base64url')}.c2ln`;
    expect(await refusal(unsigned)).toMatch(/no signing certificate/);
    const noSerial = signMdsBlob(fido, { ...blobPayload(1, []), no: 'one' as unknown as number });
    expect(await refusal(noSerial)).toMatch(/needs a serial number \(no\), a nextUpdate date/);
  });

  it('refuses to verify without a root (the library would skip the chain check)', async () => {
    expect(await refusal(signMdsBlob(createMdsSigner('Anyone'), blobPayload(1, [blobEntry(KEY)])), 0, [])).toBe('no FIDO metadata root is configured (LATCHKEY_FIDO_METADATA_ROOT)');
  });
});

describe('readMetadataRoots', () => {
  it('reads every certificate of a PEM file, and the shipped GlobalSign Root CA - R3', () => {
    const other = createMdsSigner('Second');
    expect(readMetadataRoots(writeTestRoot(join(dir, 'two.pem'), fido.root, other.root))).toHaveLength(2);
    const shipped = readMetadataRoots(DEFAULT_FIDO_METADATA_ROOT);
    expect(shipped).toHaveLength(1);
    expect(new X509Certificate(shipped[0]!).fingerprint256).toBe('CB:B5:22:D7:B7:F1:27:AD:6A:01:13:86:5B:DF:1C:D4:10:2E:7D:07:59:AF:63:5A:7C:F4:72:0D:C9:63:C5:3B');
  });

  it('names the file when it holds no certificate', () => {
    const empty = join(dir, 'empty.pem');
    writeFileSync(empty, 'nothing here\n');
    expect(() => readMetadataRoots(empty)).toThrow(`${empty} holds no PEM certificate`);
  });
});
