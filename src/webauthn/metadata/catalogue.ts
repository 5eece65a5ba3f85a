/**
 * The FIDO metadata Latchkey trusts (MDS3, https://fidoalliance.org/metadata/):
 * the entries of the last BLOB whose signature chain verified, by AAGUID. It is
 * read on the registration path (which model is this, is it certified, may its
 * attestation chain be trusted) and on the sign-in path (has the model been
 * marked compromised since), so it is held in memory and replaced whole when a
 * newer BLOB is imported (metadataStore.ts).
 */
import type { AuthenticatorStatus, MDSJWTPayload, MetadataBLOBPayloadEntry, MetadataStatement } from '@simplewebauthn/server';

/** FIDO certification levels, lowest first (FIDO_CERTIFIED is the level-1 certification of the older program). */
export const CERTIFICATION_LEVELS = [
  'FIDO_CERTIFIED_L1',
  'FIDO_CERTIFIED_L1plus',
  'FIDO_CERTIFIED_L2',
  'FIDO_CERTIFIED_L2plus',
  'FIDO_CERTIFIED_L3',
  'FIDO_CERTIFIED_L3plus',
] as const;
export type CertificationLevel = (typeof CERTIFICATION_LEVELS)[number];

/** How people read a level: "FIDO Certified L2". */
export function certificationLabel(level: CertificationLevel | undefined): string {
  if (!level) return 'Not FIDO certified';
  return `FIDO Certified ${level.replace('FIDO_CERTIFIED_', '').replace('plus', '+')}`;
}

/** Whether `level` is at least `minimum` (no level meets any minimum). */
export function meetsCertification(level: CertificationLevel | undefined, minimum: CertificationLevel): boolean {
  return level !== undefined && CERTIFICATION_LEVELS.indexOf(level) >= CERTIFICATION_LEVELS.indexOf(minimum);
}

/**
 * Statuses that say a model's keys can no longer be trusted (FIDO Metadata Service v3 §3.1.4). The library
 * refuses four of these at registration; REVOKED ("the authenticator's certification was revoked") is one too.
 */
export const COMPROMISED_STATUSES: readonly AuthenticatorStatus[] = [
  'REVOKED',
  'USER_VERIFICATION_BYPASS',
  'ATTESTATION_KEY_COMPROMISE',
  'USER_KEY_REMOTE_COMPROMISE',
  'USER_KEY_PHYSICAL_COMPROMISE',
];

/** What Latchkey keeps of one BLOB entry. */
export interface MetadataEntry {
  aaguid: string;
  /** The model's name: the statement's `description` ("YubiKey 5 Series with NFC"). */
  description: string;
  /** The highest certification its status reports state; undefined when none. */
  certification: CertificationLevel | undefined;
  /** The first compromising status among its reports; undefined when none. */
  compromised: AuthenticatorStatus | undefined;
  /** The statement: attestation roots, attestation types, key protection. */
  statement: MetadataStatement;
}

export function entryOf(entry: MetadataBLOBPayloadEntry & { aaguid: string; metadataStatement: MetadataStatement }): MetadataEntry {
  let certification: CertificationLevel | undefined;
  let compromised: AuthenticatorStatus | undefined;
  for (const report of entry.statusReports ?? []) {
    const level: CertificationLevel | undefined = report.status === 'FIDO_CERTIFIED' ? 'FIDO_CERTIFIED_L1' : (CERTIFICATION_LEVELS as readonly string[]).includes(report.status) ? (report.status as CertificationLevel) : undefined;
    if (level && !meetsCertification(certification, level)) certification = level;
    if (!compromised && COMPROMISED_STATUSES.includes(report.status)) compromised = report.status;
  }
  return { aaguid: entry.aaguid.toLowerCase(), description: entry.metadataStatement.description, certification, compromised, statement: entry.metadataStatement };
}

export class MetadataCatalogue {
  private constructor(
    /** The BLOB's serial number (`no`); 0 when none is loaded. */
    readonly serial: number,
    /** The BLOB's `nextUpdate` (YYYY-MM-DD); '' when none is loaded. */
    readonly nextUpdate: string,
    private readonly entries: ReadonlyMap<string, MetadataEntry>,
  ) {}

  static readonly EMPTY = new MetadataCatalogue(0, '', new Map());

  /** The FIDO2 entries (those with an AAGUID and a statement) of a verified BLOB payload. */
  static fromPayload(payload: Pick<MDSJWTPayload, 'no' | 'nextUpdate' | 'entries'>): MetadataCatalogue {
    const entries = new Map<string, MetadataEntry>();
    for (const entry of payload.entries ?? []) {
      if (typeof entry.aaguid === 'string' && entry.metadataStatement) {
        const e = entryOf(entry as MetadataBLOBPayloadEntry & { aaguid: string; metadataStatement: MetadataStatement });
        entries.set(e.aaguid, e);
      }
    }
    return new MetadataCatalogue(payload.no, payload.nextUpdate, entries);
  }

  get size(): number {
    return this.entries.size;
  }

  get(aaguid: string): MetadataEntry | undefined {
    return this.entries.get(aaguid.toLowerCase());
  }

  all(): MetadataEntry[] {
    return [...this.entries.values()];
  }
}

/** A catalogue of loose statements (the FIDO conformance tool's "server metadata" files): no status reports. */
export function catalogueOfStatements(statements: MetadataStatement[]): MetadataCatalogue {
  return MetadataCatalogue.fromPayload({
    no: 0,
    nextUpdate: '',
    entries: statements.filter((s) => s.aaguid).map((s) => ({ aaguid: s.aaguid!, metadataStatement: s, statusReports: [], timeOfLastStatusChange: '' })),
  });
}
