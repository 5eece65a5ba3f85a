/**
 * WAL checkpoints on a worker thread, so the server's event loop neither
 * copies pages into the database file nor waits for an fsync.
 *
 * SQLite in WAL mode appends every commit to the `-wal` file; a checkpoint
 * copies those pages back into the database file and, with
 * `synchronous=NORMAL`, fsyncs both files. By default the committing
 * connection runs one every 1,000 pages, on the event loop, and the first
 * commit after each checkpoint that emptied the WAL fsyncs the WAL's new
 * header. Measured here, that was a large part of a sign-in's database time
 * (BENCHMARKS.md).
 *
 * The worker has its own connection to the same file and runs PASSIVE
 * checkpoints only: they never wait for, or block, the server's readers and
 * writers (`sqlite3_wal_checkpoint_v2`). A passive checkpoint copies what was
 * committed when it began; under a steady stream of commits it never catches
 * up with the last one, and SQLite starts the WAL file over only when a
 * checkpoint has. So the server's connection keeps a backstop: its own
 * automatic checkpoint at {@link BACKSTOP_PAGES} pages instead of 1,000. By
 * then the worker has copied all but the last interval's pages, so the
 * backstop copies few, completes, and the WAL starts over (measured without
 * it: 700 MB of WAL after 12 s of sign-ins). A backstop that finds the worker
 * mid-checkpoint is retried at the next commit, so the WAL stays within the
 * backstop plus what is committed during one of the worker's checkpoints. If
 * the worker stops for any reason, the server's connection goes back to
 * checkpointing every 1,000 pages.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type SQLite from 'better-sqlite3';
import { letWorkersSizeTheirYoungGeneration } from '../runtime.js';

/** How often the worker checkpoints. */
export const CHECKPOINT_INTERVAL_MS = 100;
/** The server connection's own automatic checkpoint while the worker runs, in pages (40 MiB of WAL at 4 KiB pages). */
export const BACKSTOP_PAGES = 10_000;
const DEFAULT_AUTOCHECKPOINT_PAGES = 1000;
/** The worker's young generation, in MiB: a checkpoint every 100 ms allocates a few hundred bytes. */
const WORKER_YOUNG_GENERATION_MIB = 1;

// Plain CommonJS, so the worker needs no TypeScript loader (tests, tsx and built code alike).
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 0');
function checkpoint() {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (err) {
    // SQLITE_BUSY: another connection is checkpointing; the next pass catches up.
    if (!err || err.code !== 'SQLITE_BUSY') throw err;
  }
}
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on('message', (message) => {
  if (message !== 'stop') return;
  clearInterval(timer);
  try { checkpoint(); } finally { db.close(); }
  parentPort.postMessage('stopped');
});
parentPort.postMessage('ready');
`;

export interface BackgroundCheckpoints {
  /** Stop the worker (after a last checkpoint) and hand checkpoints back to the server's connection. */
  stop(): Promise<void>;
}

export function startBackgroundCheckpoints(
  sqlite: SQLite.Database,
  file: string,
  { intervalMs = CHECKPOINT_INTERVAL_MS, backstopPages = BACKSTOP_PAGES }: { intervalMs?: number; backstopPages?: number } = {},
): BackgroundCheckpoints {
  letWorkersSizeTheirYoungGeneration();
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { driver: createRequire(import.meta.url).resolve('better-sqlite3'), file, intervalMs },
    resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MIB },
  });
  // Never keeps the process alive on its own.
  worker.unref();
  let running = false;
  let ended = false;
  const handBack = () => {
    ended = true;
    if (running && sqlite.open) sqlite.pragma(`wal_autocheckpoint = ${DEFAULT_AUTOCHECKPOINT_PAGES}`);
    running = false;
  };
  worker.on('message', (message) => {
    if (message === 'ready' && !ended && sqlite.open) {
      sqlite.pragma(`wal_autocheckpoint = ${backstopPages}`);
      running = true;
    }
  });
  // Could not start, or died: the server's connection checkpoints itself again.
  worker.on('error', handBack);
  const exited = new Promise<void>((resolve) => worker.once('exit', () => (handBack(), resolve())));
  return {
    async stop() {
      if (!ended) {
        worker.postMessage('stop');
        const timeout = setTimeout(() => void worker.terminate(), 5000);
        worker.on('message', (message) => message === 'stopped' && void worker.terminate());
        await exited;
        clearTimeout(timeout);
      }
      await exited;
    },
  };
}
