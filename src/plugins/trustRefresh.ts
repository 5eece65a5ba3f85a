/**
 * Keeps what this instance trusts about authenticators current:
 * - every LATCHKEY_TRUST_RELOAD_SECONDS (30 s) it reads the authenticator policy and the FIDO
 *   metadata again from the database (webauthn/trust.ts `reload`), so a BLOB
 *   imported by the CLI or another instance, and a policy an RA Manager saved
 *   on another instance, take effect here within that time;
 * - with LATCHKEY_FIDO_METADATA_URL set, it downloads the BLOB at start when
 *   none is kept or the kept one's nextUpdate has passed, then checks hourly
 *   (downloading when nextUpdate has passed, and at least daily so a model
 *   marked compromised between updates is seen). A download or verification
 *   that fails is logged as a warning and the previous BLOB stays in use.
 * Timers are unref'd (they never keep a process alive) and cleared on close.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { FidoMetadataRow } from '../db/schema.js';
import { importMetadataBlob, type MetadataDeps } from '../webauthn/metadata/metadataStore.js';
import { MetadataBlobRefused } from '../webauthn/metadata/verifyMetadataBlob.js';
import { payloadOfVerifiedBlob } from '../webauthn/trust.js';

/** How often the metadata URL is considered. */
export const METADATA_CHECK_MS = 60 * 60_000;
/** Download at least this often even before nextUpdate: compromise reports may be published between updates. */
export const METADATA_MAX_AGE_MS = 24 * 60 * 60_000;
/** The FIDO Alliance's BLOB is a few megabytes; refuse to read more than this. */
const MAX_BLOB_BYTES = 50 * 1024 * 1024;
const DOWNLOAD_TIMEOUT_MS = 60_000;

/**
 * Whether to download now: nothing kept, its nextUpdate reached, or the last download (this process's, else the
 * kept BLOB's import) more than a day ago.
 */
export function metadataDownloadDue(kept: Pick<FidoMetadataRow, 'next_update' | 'imported_at'> | undefined, lastDownloadAt: number | undefined, now: number): boolean {
  if (!kept) return true;
  if (kept.next_update <= new Date(now).toISOString().slice(0, 10)) return true;
  return now - Math.max(lastDownloadAt ?? 0, kept.imported_at) >= METADATA_MAX_AGE_MS;
}

/** The URL without its query: what logs and the audit log show (a query could carry an access token). */
export function metadataUrlLabel(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}

export async function downloadMetadataBlob(url: string): Promise<string> {
  const response = await fetch(url, { signal: AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS), redirect: 'follow' });
  if (!response.ok) throw new Error(`the server answered HTTP ${response.status}`);
  const length = Number(response.headers.get('content-length') ?? 0);
  if (length > MAX_BLOB_BYTES) throw new Error(`the answer is too large (${length} bytes)`);
  const text = await response.text();
  if (Buffer.byteLength(text) > MAX_BLOB_BYTES) throw new Error('the answer is too large');
  return text;
}

export type RefreshOutcome = { outcome: 'imported'; serial: number } | { outcome: 'unchanged'; serial: number } | { outcome: 'failed'; reason: string };

/**
 * Download the BLOB at `url` and import it when it is newer than the one kept. Never throws: a failure is logged
 * (without the query of the URL) and returned, and the previous BLOB stays in use.
 */
export async function refreshMetadataFromUrl(deps: MetadataDeps & { log: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void } }, url: string): Promise<RefreshOutcome> {
  const source = metadataUrlLabel(url);
  let blob: string;
  try {
    blob = await downloadMetadataBlob(url);
  } catch (err) {
    const reason = `could not download the FIDO metadata BLOB from ${source}: ${(err as Error).message}`;
    deps.log.warn({ source }, `${reason}; the previous one stays in use`);
    return { outcome: 'failed', reason };
  }
  // The same BLOB as before is the usual answer: not worth a verification, a warning or an audit record. Reading
  // the serial unverified is safe here because it can only make us skip, never trust.
  const kept = (await deps.store.fidoMetadata.summary())?.serial ?? 0;
  let published: number | undefined;
  try {
    published = payloadOfVerifiedBlob(blob.trim()).no;
  } catch {
    // Not even a JWT: importMetadataBlob says so.
  }
  if (typeof published === 'number' && published <= kept) return { outcome: 'unchanged', serial: kept };
  try {
    const imported = await importMetadataBlob(deps, blob, source);
    deps.log.info({ source, serial: imported.serial, entries: imported.entries, passkeysFlagged: imported.passkeysFlagged }, 'FIDO metadata BLOB imported');
    return { outcome: 'imported', serial: imported.serial };
  } catch (err) {
    // Instances that start together download together: the one that stored it first did the work.
    if (err instanceof MetadataBlobRefused && typeof published === 'number') {
      const keptNow = (await deps.store.fidoMetadata.summary())?.serial ?? 0;
      if (err.alreadyKept || published <= keptNow) return { outcome: 'unchanged', serial: keptNow };
    }
    const reason = err instanceof MetadataBlobRefused ? `refused the FIDO metadata BLOB from ${source}: ${err.message}` : `could not import the FIDO metadata BLOB from ${source}: ${(err as Error).message}`;
    deps.log.warn({ source }, `${reason}; the previous one stays in use`);
    return { outcome: 'failed', reason };
  }
}

export const trustRefreshPlugin = fp(
  async (app: FastifyInstance) => {
    const latchkey = app.latchkey;
    const { store, trust, config } = latchkey;
    const deps = { store, trust, config, mailer: latchkey.mailer, log: app.log, now: latchkey.now };
    let closed = false;
    // Work in flight, awaited on close so nothing writes to a database being closed.
    const running = new Set<Promise<unknown>>();
    const track = (work: () => Promise<unknown>) => {
      if (closed) return;
      const p = work().finally(() => running.delete(p));
      running.add(p);
    };

    const reload = setInterval(
      () => track(() => trust.reload(store).catch((err: unknown) => app.log.warn({ err: (err as Error).message }, 'reloading the authenticator policy and FIDO metadata failed'))),
      config.trustReloadSeconds * 1000,
    );
    reload.unref();
    const timers = [reload];

    const url = config.fidoMetadataUrl;
    if (url) {
      let lastDownloadAt: number | undefined;
      let checking = false;
      const check = () =>
        track(async () => {
          if (checking) return;
          checking = true;
          try {
            if (!metadataDownloadDue(await store.fidoMetadata.summary(), lastDownloadAt, latchkey.now())) return;
            lastDownloadAt = latchkey.now();
            await refreshMetadataFromUrl(deps, url);
          } catch (err) {
            app.log.warn({ err: (err as Error).message }, 'checking the FIDO metadata URL failed');
          } finally {
            checking = false;
          }
        });
      // At start: not awaited, so a slow or unreachable metadata service never delays serving.
      check();
      const hourly = setInterval(check, METADATA_CHECK_MS);
      hourly.unref();
      timers.push(hourly);
    }

    app.addHook('onClose', async () => {
      closed = true;
      for (const t of timers) clearInterval(t);
      await Promise.allSettled([...running]);
    });
  },
  { name: 'trust-refresh' },
);
