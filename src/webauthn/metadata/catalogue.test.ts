import { describe, expect, it } from 'vitest';
import type { AuthenticatorStatus, MetadataStatement } from '@simplewebauthn/server';
import { catalogueWith, metadataStatement } from '../../../test/support/metadataStatements.js';
import { catalogueOfStatements, certificationLabel, COMPROMISED_STATUSES, entryOf, meetsCertification, MetadataCatalogue } from './catalogue.js';

const AAGUID = '5b1f0c3e-8d2a-4f6b-9c7e-1a2b3c4d5e6f';
const statement = metadataStatement({ aaguid: AAGUID, description: 'Test Security Key', attestationRootCertificates: [] });
const entry = (statuses: AuthenticatorStatus[], aaguid = AAGUID) => entryOf({ aaguid, metadataStatement: statement, statusReports: statuses.map((status) => ({ status })), timeOfLastStatusChange: '' });

describe('entryOf', () => {
  it.each<[AuthenticatorStatus[], string | undefined]>([
    [[], undefined],
    [['NOT_FIDO_CERTIFIED'], undefined],
    [['SELF_ASSERTION_SUBMITTED', 'UPDATE_AVAILABLE'], undefined],
    [['FIDO_CERTIFIED'], 'FIDO_CERTIFIED_L1'],
    [['FIDO_CERTIFIED_L1'], 'FIDO_CERTIFIED_L1'],
    [['FIDO_CERTIFIED', 'FIDO_CERTIFIED_L1plus'], 'FIDO_CERTIFIED_L1plus'],
    [['FIDO_CERTIFIED_L1', 'FIDO_CERTIFIED_L2', 'FIDO_CERTIFIED_L1plus'], 'FIDO_CERTIFIED_L2'],
    [['FIDO_CERTIFIED_L3plus', 'FIDO_CERTIFIED_L1'], 'FIDO_CERTIFIED_L3plus'],
    [['FIDO_CERTIFIED_L2plus', 'FIDO_CERTIFIED'], 'FIDO_CERTIFIED_L2plus'],
  ])('certification of %j is %s: the highest level stated, FIDO_CERTIFIED counting as L1', (statuses, level) => {
    expect(entry(statuses).certification).toBe(level);
  });

  it.each(COMPROMISED_STATUSES)('a report of %s marks the model compromised, certified or not', (status) => {
    expect(entry([status]).compromised).toBe(status);
    expect(entry(['FIDO_CERTIFIED_L2', status, 'UPDATE_AVAILABLE'])).toMatchObject({ compromised: status, certification: 'FIDO_CERTIFIED_L2' });
  });

  it('keeps the first compromising status when there are several', () => {
    expect(entry(['FIDO_CERTIFIED_L1', 'USER_KEY_REMOTE_COMPROMISE', 'REVOKED']).compromised).toBe('USER_KEY_REMOTE_COMPROMISE');
    expect(entry(['REVOKED', 'USER_VERIFICATION_BYPASS']).compromised).toBe('REVOKED');
  });

  it('does not count UPDATE_AVAILABLE or NOT_FIDO_CERTIFIED as compromised', () => {
    expect(entry(['UPDATE_AVAILABLE', 'NOT_FIDO_CERTIFIED', 'SELF_ASSERTION_SUBMITTED']).compromised).toBeUndefined();
  });

  it('keeps the AAGUID in lower case and the statement’s description as the model', () => {
    expect(entry([], AAGUID.toUpperCase())).toMatchObject({ aaguid: AAGUID, description: 'Test Security Key', statement });
  });
});

describe('MetadataCatalogue', () => {
  it('holds the FIDO2 entries of a payload by AAGUID, in any case, with its serial and next update', () => {
    const u2f: MetadataStatement = { ...statement, aaguid: undefined, attestationCertificateKeyIdentifiers: ['923881fe2f214ee465484371aeb72e97f5a58e0a'] };
    const catalogue = MetadataCatalogue.fromPayload({
      no: 42,
      nextUpdate: '2027-01-01',
      entries: [
        { aaguid: AAGUID.toUpperCase(), metadataStatement: statement, statusReports: [{ status: 'FIDO_CERTIFIED_L2' }], timeOfLastStatusChange: '' },
        // A U2F key (no AAGUID) and an entry without a statement: not FIDO2, not kept.
        { attestationCertificateKeyIdentifiers: ['923881fe2f214ee465484371aeb72e97f5a58e0a'], metadataStatement: u2f, statusReports: [], timeOfLastStatusChange: '' },
        { aaguid: 'e0f1a2b3-c4d5-4e6f-8a9b-0c1d2e3f4a5b', statusReports: [], timeOfLastStatusChange: '' },
      ],
    });
    expect(catalogue).toMatchObject({ serial: 42, nextUpdate: '2027-01-01', size: 1 });
    expect(catalogue.get(AAGUID.toUpperCase())).toMatchObject({ description: 'Test Security Key', certification: 'FIDO_CERTIFIED_L2' });
    expect(catalogue.get('e0f1a2b3-c4d5-4e6f-8a9b-0c1d2e3f4a5b')).toBeUndefined();
    expect(catalogue.all().map((e) => e.aaguid)).toEqual([AAGUID]);
  });

  it('is empty before a BLOB is loaded', () => {
    expect(MetadataCatalogue.EMPTY).toMatchObject({ serial: 0, nextUpdate: '', size: 0 });
    expect(MetadataCatalogue.EMPTY.get(AAGUID)).toBeUndefined();
  });

  it('from loose statements (the conformance tool’s): no status, so neither certified nor compromised', () => {
    const catalogue = catalogueOfStatements([statement, { ...statement, aaguid: undefined }]);
    expect(catalogue.size).toBe(1);
    expect(catalogue.get(AAGUID)).toMatchObject({ certification: undefined, compromised: undefined });
  });

  it('from the test helper: the status reports given', () => {
    expect(catalogueWith([{ statement, statusReports: [{ status: 'REVOKED' }] }]).get(AAGUID)?.compromised).toBe('REVOKED');
  });
});

describe('certification levels', () => {
  it('reads as people write them', () => {
    expect(certificationLabel('FIDO_CERTIFIED_L1')).toBe('FIDO Certified L1');
    expect(certificationLabel('FIDO_CERTIFIED_L2plus')).toBe('FIDO Certified L2+');
    expect(certificationLabel(undefined)).toBe('Not FIDO certified');
  });

  it('meets a minimum at or above it; no level meets any', () => {
    expect(meetsCertification('FIDO_CERTIFIED_L2', 'FIDO_CERTIFIED_L2')).toBe(true);
    expect(meetsCertification('FIDO_CERTIFIED_L2', 'FIDO_CERTIFIED_L1plus')).toBe(true);
    expect(meetsCertification('FIDO_CERTIFIED_L1plus', 'FIDO_CERTIFIED_L2')).toBe(false);
    expect(meetsCertification(undefined, 'FIDO_CERTIFIED_L1')).toBe(false);
  });
});
