/**
 * Import a FIDO metadata BLOB: verify it (verifyMetadataBlob.ts), keep it in
 * the database (one row, replaced only by a higher serial, so every instance
 * and the CLI agree on it), use it at once in this process, and tell the
 * owners of passkeys whose model the new BLOB marks compromised — and the
 * audit log — once, when the mark first appears. The CLI
 * (`latchkey metadata import`) and the server's URL refresh
 * (plugins/trustRefresh.ts) both come here.
 */
import type { Config } from '../../config/index.js';
import type { Store } from '../../db/store.js';
import type { Authenticator, User } from '../../db/schema.js';
import type { AuthenticatorPolicy } from '../authenticatorPolicy.js';
import type { Mailer } from '../../mail/mailer.js';
import { sendModelCompromisedNotice } from '../../mail/sendModelCompromisedNotice.js';
import type { Trust } from '../trust.js';
import type { MetadataCatalogue, MetadataEntry } from './catalogue.js';
import { MetadataBlobRefused, readMetadataRoots, verifyMetadataBlob } from './verifyMetadataBlob.js';

export interface MetadataDeps {
  store: Store;
  trust: Trust;
  config: Pick<Config, 'fidoMetadataRoot' | 'fidoMetadataSigner' | 'organisation' | 'raContactUrl'>;
  mailer: Mailer;
  log: { warn(obj: object, msg: string): void };
  now: () => number;
}

export interface ImportedBlob {
  serial: number;
  nextUpdate: string;
  entries: number;
  /** Models the BLOB marks compromised that the previous one did not. */
  newlyCompromised: MetadataEntry[];
  /** Passkeys whose owners were told (audit events written). */
  passkeysFlagged: number;
}

/** Where a BLOB came from, for the audit log and doctor: a file name or the URL, at most 300 characters. */
function sourceLabel(source: string): string {
  return source.length > 300 ? `${source.slice(0, 297)}...` : source;
}

/**
 * Verify and keep `blob`; throws {@link MetadataBlobRefused} (and changes nothing) when it must not be used. A
 * refusal is recorded in the audit log, as is the import.
 */
export async function importMetadataBlob(deps: MetadataDeps, blob: string, source: string): Promise<ImportedBlob> {
  const { store, trust } = deps;
  const at = deps.now();
  try {
    // The catalogue in use, read again: another instance or the CLI may have imported one since this process did.
    await trust.reload(store);
    const previous = trust.metadata();
    let roots: string[];
    try {
      roots = readMetadataRoots(deps.config.fidoMetadataRoot);
    } catch (err) {
      throw new MetadataBlobRefused(`the FIDO metadata root could not be read (LATCHKEY_FIDO_METADATA_ROOT): ${(err as Error).message}`);
    }
    const { catalogue, payload } = await verifyMetadataBlob(blob, { roots, signer: deps.config.fidoMetadataSigner, keptSerial: previous.serial, now: at });
    const newlyCompromised = catalogue.all().filter((e) => e.compromised && !previous.get(e.aaguid)?.compromised);
    const action = trust.policy().compromised;
    // The BLOB, the audit records and what the compromise does to sessions: one transaction, so a failure part way
    // can't leave a model marked compromised whose owners were never recorded (the next import would not see it as new).
    const owners = await store.transaction(async (tx) => {
      const kept = await tx.fidoMetadata.replace({
        serial: payload.no,
        next_update: payload.nextUpdate,
        entries: catalogue.size,
        blob: blob.trim(),
        source: sourceLabel(source),
        imported_at: at,
      });
      if (!kept) return undefined;
      await tx.audit.record({ at, event: 'metadata.imported', outcome: 'success', detail: { serial: payload.no, nextUpdate: payload.nextUpdate, entries: catalogue.size, source: sourceLabel(source) } });
      return recordCompromised(tx, at, catalogue, newlyCompromised, action);
    });
    // Another instance stored this serial (or a higher one) between our reload and now: it tells people, not us.
    if (!owners) throw new MetadataBlobRefused(`the BLOB is not newer than the one in use: serial ${payload.no} has already been imported`, true);
    trust.setMetadata(catalogue);
    for (const { user, authenticator, model } of owners) {
      await sendModelCompromisedNotice(deps, user, authenticator, { model: model.description, status: model.compromised!, action });
    }
    return { serial: payload.no, nextUpdate: payload.nextUpdate, entries: catalogue.size, newlyCompromised, passkeysFlagged: owners.length };
  } catch (err) {
    if (err instanceof MetadataBlobRefused && !err.alreadyKept) {
      await store.audit.record({ at, event: 'metadata.refused', outcome: 'refused', detail: { reason: err.message, source: sourceLabel(source) } });
    }
    throw err;
  }
}

/**
 * For each passkey of a newly compromised model: an audit event, and its sessions brought down to what it is worth
 * now — ended when the policy refuses the model, no longer AAL3 otherwise. Returns the owners to email.
 */
async function recordCompromised(tx: Store, at: number, catalogue: MetadataCatalogue, models: MetadataEntry[], action: AuthenticatorPolicy['compromised']) {
  const owners: { user: User; authenticator: Authenticator; model: MetadataEntry }[] = [];
  for (const model of models) {
    for (const { authenticator, user } of await tx.authenticators.listOfModelWithUser(model.aaguid)) {
      const sessions = action === 'refuse' ? await tx.sessions.deleteForAuthenticator(user.id, authenticator.id) : await tx.sessions.lowerForAuthenticator(user.id, authenticator.id, 2);
      await tx.audit.record({
        at,
        event: 'passkey.model_compromised',
        outcome: 'success',
        subjectUserId: user.id,
        authenticatorId: authenticator.id,
        detail: { model: model.description, aaguid: model.aaguid, status: model.compromised, action, serial: catalogue.serial, sessions },
      });
      owners.push({ user, authenticator, model });
    }
  }
  return owners;
}
