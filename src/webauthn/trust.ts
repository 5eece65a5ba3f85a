/**
 * What Latchkey trusts about authenticators right now: the FIDO metadata
 * (metadata/catalogue.ts) and the organisation's authenticator policy
 * (authenticatorPolicy.ts). Both are read on the sign-in path, so they are held
 * in memory; both live in the database, so every instance sees the same ones:
 * `reload` reads them again (at start, after a local change, and on a timer for
 * changes made by another instance or the CLI).
 */
import type { MDSJWTPayload } from '@simplewebauthn/server';
import type { Authenticator } from '../db/schema.js';
import type { Store } from '../db/store.js';
import { DEFAULT_POLICY, parsePolicy, type AttestationFacts, type AuthenticatorPolicy, type PasskeyFacts } from './authenticatorPolicy.js';
import { MetadataCatalogue } from './metadata/catalogue.js';

/** The settings key the policy is stored under (JSON, AuthenticatorPolicySchema). */
export const POLICY_SETTING = 'authenticator_policy';

/** The payload of a BLOB that was verified when it was imported: read without verifying again. */
export function payloadOfVerifiedBlob(blob: string): MDSJWTPayload {
  const part = blob.split('.')[1] ?? '';
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as MDSJWTPayload;
}

export class Trust {
  private catalogue: MetadataCatalogue = MetadataCatalogue.EMPTY;
  private currentPolicy: AuthenticatorPolicy = DEFAULT_POLICY;
  /** Why the stored policy is not the one in force, when it could not be read. */
  policyProblem: string | undefined;

  metadata(): MetadataCatalogue {
    return this.catalogue;
  }

  policy(): AuthenticatorPolicy {
    return this.currentPolicy;
  }

  /** Use this catalogue (a BLOB just verified, or conformance statements). */
  setMetadata(catalogue: MetadataCatalogue): void {
    this.catalogue = catalogue;
  }

  setPolicy(policy: AuthenticatorPolicy): void {
    this.currentPolicy = policy;
  }

  /** Read the policy and, when its serial changed, the metadata BLOB from the database. */
  async reload(store: Store): Promise<void> {
    const stored = await store.settings.get(POLICY_SETTING);
    const policy = parsePolicy(stored);
    // A stored policy this version can't read (written by a newer one, or changed by hand) must not quietly become
    // the permissive default: the last one read stays in force, and doctor says so.
    this.policyProblem = stored !== undefined && !policy ? 'The stored authenticator policy could not be read: the last policy read is in force. Save it again at /admin/policy.' : undefined;
    if (policy || stored === undefined) this.currentPolicy = policy ?? DEFAULT_POLICY;
    const summary = await store.fidoMetadata.summary();
    if (summary && summary.serial !== this.catalogue.serial) {
      const row = await store.fidoMetadata.current();
      if (row) this.catalogue = MetadataCatalogue.fromPayload(payloadOfVerifiedBlob(row.blob));
    }
  }

  /** What is known of a stored passkey, for the policy's checks. */
  factsOf(authenticator: Pick<Authenticator, 'aaguid' | 'backup_eligible'>, attestation: AttestationFacts | undefined): PasskeyFacts {
    return { aaguid: authenticator.aaguid, deviceBound: authenticator.backup_eligible === 0, attestation: attestation ?? { verified: false } };
  }
}
