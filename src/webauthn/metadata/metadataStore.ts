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
import type { Mailer } from '../../mail/mailer.js';
import { sendModelCompromisedNotice } from '../../mail/sendModelCompromisedNotice.js';
import type { Trust } from '../trust.js';
import type { MetadataCatalogue, MetadataEntry } from './catalogue.js';
import { MetadataBlobRefused, readMetadataRoots, verifyMetadataBlob } from './verifyMetadataBlob.js';

export interface MetadataDeps {
  store: Store;
  trust: Trust;
  config: Pick<Config, 'fidoMetadataRoot' | 'organisation' | 'raContactUrl'>;
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
    const { catalogue, payload } = await verifyMetadataBlob(blob, { roots, keptSerial: previous.serial, now: at });
    const kept = await store.fidoMetadata.replace({
      serial: payload.no,
      next_update: payload.nextUpdate,
      entries: catalogue.size,
      blob: blob.trim(),
      source: sourceLabel(source),
      imported_at: at,
    });
    // Another instance stored this serial (or a higher one) between our reload and now: it tells people, not us.
    if (!kept) throw new MetadataBlobRefused(`the BLOB is not newer than the one in use: serial ${payload.no} has already been imported`, true);
    trust.setMetadata(catalogue);
    await store.audit.record({ at, event: 'metadata.imported', outcome: 'success', detail: { serial: payload.no, nextUpdate: payload.nextUpdate, entries: catalogue.size, source: sourceLabel(source) } });
    const newlyCompromised = catalogue.all().filter((e) => e.compromised && !previous.get(e.aaguid)?.compromised);
    const passkeysFlagged = await tellOwners(deps, catalogue, newlyCompromised);
    return { serial: payload.no, nextUpdate: payload.nextUpdate, entries: catalogue.size, newlyCompromised, passkeysFlagged };
  } catch (err) {
    if (err instanceof MetadataBlobRefused && !err.alreadyKept) {
      await store.audit.record({ at, event: 'metadata.refused', outcome: 'refused', detail: { reason: err.message, source: sourceLabel(source) } });
    }
    throw err;
  }
}

/** An audit event and an email for each passkey of a newly compromised model; returns how many passkeys. */
async function tellOwners(deps: MetadataDeps, catalogue: MetadataCatalogue, models: MetadataEntry[]): Promise<number> {
  const action = deps.trust.policy().compromised;
  let count = 0;
  for (const model of models) {
    const status = model.compromised!;
    for (const { authenticator, user } of await deps.store.authenticators.listOfModelWithUser(model.aaguid)) {
      await deps.store.audit.record({
        at: deps.now(),
        event: 'passkey.model_compromised',
        outcome: 'success',
        subjectUserId: user.id,
        authenticatorId: authenticator.id,
        detail: { model: model.description, aaguid: model.aaguid, status, action, serial: catalogue.serial },
      });
      await sendModelCompromisedNotice(deps, user, authenticator, { model: model.description, status, action });
      count++;
    }
  }
  return count;
}
