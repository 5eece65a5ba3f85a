/**
 * Assertion signatures checked on the event loop (the default: LATCHKEY_SIGNATURE_WORKERS=0) or on worker threads:
 * importing the credential's public key and verifying with it, off the event loop in the second case.
 *
 * By default no imported key is kept (DEFAULT_PASSKEY_KEY_CACHE): a key goes to `crypto.verify` as its DER (P-256) or
 * its JWK (any other), and Node imports it, checks the signature and frees it within the call.
 * LATCHKEY_PASSKEY_KEY_CACHE keeps that many imported keys instead, on the event loop or in each worker, keyed by the
 * stored COSE key itself, so a credential re-registered under the same id never meets its old key.
 *
 * Memory: an imported P-256 key holds about 2.7 KiB of OpenSSL memory that V8 does not count, so a KeyObject dropped
 * from a cache is freed only when V8 next runs a full collection. On the event loop that comes when its heap grows
 * enough; meanwhile dropped keys pile up (100,000 people signing in, a cache of 10,000: a malloc heap of 109 MiB,
 * against 12 MiB with no cache; BENCHMARKS.md, 2026-12-08). A worker's small heap almost never needs one (its native
 * memory grew by about 100 MiB over 30,000 sign-ins with 10,000 passkeys), so the worker collects after every
 * {@link GC_AFTER_EVICTIONS} keys it dropped (a few milliseconds on the worker thread, never on the event loop), and
 * its young generation is kept small, since it only ever holds one batch's messages.
 *
 * Messages carry plain data only ({@link CredentialKey}, the signed bytes and
 * the signature). If a worker dies, its pending checks are done on the event
 * loop instead and the next check starts a new worker: a worker problem never
 * fails a sign-in that would have succeeded.
 */
import { createPublicKey, verify, type KeyObject, type VerifyJsonWebKeyInput, type VerifyPublicKeyInput } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { letWorkersSizeTheirYoungGeneration } from '../runtime.js';
import { importCredentialKey, type CredentialKey } from './coseKey.js';

/** After this many workers died (crashed, or could not start), checks stay on the event loop. */
const MAX_WORKER_DEATHS = 5;

/** Keys dropped from a worker's cache between two full collections: about 2.7 MiB of OpenSSL memory for P-256. */
export const GC_AFTER_EVICTIONS = 1000;

/**
 * The worker's young generation, in MiB (V8's default grows to 16 MiB per semi-space, 32 MiB resident): a batch of
 * checks allocates a few KiB, so a small one costs no more collections worth measuring and keeps 20 MiB or so off RSS.
 */
const WORKER_YOUNG_GENERATION_MIB = 2;

interface Check {
  id: number;
  cacheKey: string;
  key: CredentialKey;
  data: Uint8Array;
  signature: Uint8Array;
}

/** SubjectPublicKeyInfo (DER) of a P-256 key up to its uncompressed point (RFC 5480), for the imports below. */
const P256_SPKI_PREFIX_HEX = '3059301306072a8648ce3d020106082a8648ce3d03010703420004';
const P256_SPKI_PREFIX = Buffer.from(P256_SPKI_PREFIX_HEX, 'hex');

// Plain CommonJS with node:crypto only, so the worker needs no TypeScript loader (tests, tsx and built code alike).
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createPublicKey, verify } = require('node:crypto');
// A full collection on demand (see GC_AFTER_EVICTIONS). The flag is process-wide and takes effect in contexts made
// after it is set: this worker's own global has gc only when the process started with --expose-gc or an earlier
// worker set the flag, so take it from a new context either way (and never declare a global named gc).
require('node:v8').setFlagsFromString('--expose-gc');
const collectGarbage = require('node:vm').runInNewContext('gc');
const keys = new Map();
let evicted = 0;
const P256_SPKI_PREFIX = Buffer.from('${P256_SPKI_PREFIX_HEX}', 'hex');
// A P-256 key's SubjectPublicKeyInfo (DER), as p256Spki below; undefined for any other key.
function p256Spki(jwk) {
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256') return undefined;
  return Buffer.concat([P256_SPKI_PREFIX, Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]);
}
// crypto.verify's key for a check. With no cache, as keyForOneCheck below: a P-256 key as its DER, any other as its
// JWK, each imported and freed within the call. A key kept is imported, a P-256 key from its DER: OpenSSL then holds
// one copy of it (about 2.7 KiB) where a JWK import holds two (the key as imported, and the copy made for its provider
// at the first verification). OpenSSL checks that the point is on the curve either way.
function keyInputFor(check) {
  const jwk = check.key.jwk;
  const der = p256Spki(jwk);
  const input = der ? { key: der, format: 'der', type: 'spki' } : { key: jwk, format: 'jwk' };
  if (workerData.cacheSize === 0) return input;
  let key = keys.get(check.cacheKey);
  if (key) {
    keys.delete(check.cacheKey);
  } else {
    key = createPublicKey(input);
    if (keys.size >= workerData.cacheSize) {
      keys.delete(keys.keys().next().value);
      if (++evicted >= workerData.gcAfterEvictions) {
        evicted = 0;
        collectGarbage();
      }
    }
  }
  keys.set(check.cacheKey, key);
  return { key };
}
parentPort.on('message', (message) => {
  if (message === 'clear') {
    keys.clear();
    return void collectGarbage();
  }
  const results = new Array(message.length);
  for (let i = 0; i < message.length; i++) {
    const check = message[i];
    let ok = false;
    try {
      ok = verify(check.key.hash, check.data, { ...keyInputFor(check), ...check.key.options }, check.signature);
    } catch {
      // An unusable key (off its curve) or a malformed signature: not a valid signature.
    }
    results[i] = [check.id, ok];
  }
  parentPort.postMessage(results);
});
`;

/** A P-256 key's SubjectPublicKeyInfo (DER), built from its JWK members; undefined for any other key. */
function p256Spki(key: CredentialKey): Buffer | undefined {
  const jwk = key.jwk;
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256') return undefined;
  return Buffer.concat([P256_SPKI_PREFIX, Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]);
}

/** A key to keep in a cache: P-256 from DER (one OpenSSL copy, as the worker's keyInputFor), any other as imported. */
function importKeyToCache(key: CredentialKey): KeyObject {
  const der = p256Spki(key);
  return der ? createPublicKey({ key: der, format: 'der', type: 'spki' }) : importCredentialKey(key);
}

/**
 * `crypto.verify`'s key for one check, not kept: a P-256 key as its DER, any other as its JWK. Node imports it and
 * frees it within the call (OpenSSL checks that an EC point is on its curve, as an import does), so no KeyObject waits
 * for the garbage collector with its OpenSSL memory.
 */
function keyForOneCheck(key: CredentialKey): VerifyPublicKeyInput | VerifyJsonWebKeyInput {
  const der = p256Spki(key);
  return der ? { key: der, format: 'der', type: 'spki', ...key.options } : { key: key.jwk, format: 'jwk', ...key.options };
}

/** The check done on the event loop: when no worker can run, and for a dead worker's pending checks. */
function verifyInline(check: Check): boolean {
  try {
    return verify(check.key.hash, check.data, keyForOneCheck(check.key), check.signature);
  } catch {
    return false;
  }
}

class SignatureWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { check: Check; resolve: (ok: boolean) => void }>();
  private queued: Check[] = [];
  private dead = false;

  constructor(
    keyCacheSize: number,
    private readonly onDeath: (w: SignatureWorker) => void,
  ) {
    letWorkersSizeTheirYoungGeneration();
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { cacheSize: keyCacheSize, gcAfterEvictions: GC_AFTER_EVICTIONS },
      resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MIB },
    });
    // Never keeps the process alive on its own; pending checks keep it referenced (see below).
    this.worker.unref();
    this.worker.on('message', (results: [number, boolean][]) => {
      for (const [id, ok] of results) {
        const entry = this.pending.get(id);
        if (!entry) continue;
        this.pending.delete(id);
        entry.resolve(ok);
      }
      if (this.pending.size === 0) this.worker.unref();
    });
    this.worker.on('error', () => this.die());
    this.worker.on('exit', () => this.die());
  }

  get load(): number {
    return this.pending.size;
  }

  check(check: Check): Promise<boolean> {
    return new Promise((resolve) => {
      if (this.dead) return resolve(verifyInline(check));
      this.pending.set(check.id, { check, resolve });
      if (this.pending.size === 1) this.worker.ref();
      // Checks asked for in the same tick travel as one message.
      if (this.queued.push(check) === 1) queueMicrotask(() => this.flush());
    });
  }

  clear(): void {
    if (!this.dead) this.worker.postMessage('clear');
  }

  private flush(): void {
    const batch = this.queued;
    this.queued = [];
    if (!this.dead) this.worker.postMessage(batch);
  }

  private die(): void {
    if (this.dead) return;
    this.dead = true;
    this.onDeath(this);
    for (const { check, resolve } of this.pending.values()) resolve(verifyInline(check));
    this.pending.clear();
    this.queued = [];
  }
}

/**
 * LATCHKEY_PASSKEY_KEY_CACHE's default: no key kept, every check imports its key within the check (keyForOneCheck).
 * People mostly sign in once a day, so a kept key is rarely used again before it is dropped, and a dropped key's
 * OpenSSL memory (~2.7 KiB, invisible to V8) waits for a full collection: measured with 100,000 people signing in, a
 * cache of 10,000 held the server at 207–276 MiB against 153–155 MiB with none, for the same CPU per sign-in; with
 * 10,000 people signing in again every few seconds (npm run bench) it saved about 5 % of a sign-in's CPU for 7–32 MiB
 * (BENCHMARKS.md, 2026-12-08).
 */
export const DEFAULT_PASSKEY_KEY_CACHE = 0;

/**
 * LATCHKEY_SIGNATURE_WORKERS' default: none, every check on the event loop. Measured on the cold sign-in path
 * (BENCHMARKS.md): about the same CPU per ceremony as one worker, one thread and its heap fewer (the goal of a server
 * under 200 MB), at the price of one process using one core.
 */
export const DEFAULT_SIGNATURE_WORKERS = 0;

/**
 * Workers (LATCHKEY_SIGNATURE_WORKERS of them), each check to the least busy; or none (the default), and every check
 * on the event loop (`size` 0: no messages to pass, no thread of its own). Workers start on first use.
 * `keyCacheSize`: imported keys each worker, or the event loop, keeps (LATCHKEY_PASSKEY_KEY_CACHE,
 * src/config/index.ts).
 */
export class SignatureWorkerPool {
  private readonly workers: SignatureWorker[] = [];
  private nextId = 0;
  private deathCount = 0;

  constructor(
    readonly keyCacheSize: number,
    private readonly size = DEFAULT_SIGNATURE_WORKERS,
  ) {}

  /** With no workers (size 0): the keys imported on the event loop, least recently used first. */
  private readonly inlineKeys = new Map<string, KeyObject>();

  /** The check on the event loop (a pool of no workers), with the pool's own key cache if it keeps keys. */
  private verifyOnEventLoop(check: Check): boolean {
    if (this.keyCacheSize === 0) return verifyInline(check);
    let key = this.inlineKeys.get(check.cacheKey);
    try {
      if (key) {
        this.inlineKeys.delete(check.cacheKey);
      } else {
        // Kept in the most compact form (DER: one OpenSSL copy instead of two).
        key = importKeyToCache(check.key);
        // A dropped key's OpenSSL memory is freed only at the event loop's next full collection: with more people
        // signing in than the cache holds, dropped keys pile up until then (LATCHKEY_PASSKEY_KEY_CACHE, config).
        if (this.inlineKeys.size >= this.keyCacheSize) this.inlineKeys.delete(this.inlineKeys.keys().next().value!);
      }
      this.inlineKeys.set(check.cacheKey, key);
      return verify(check.key.hash, check.data, { key, ...check.key.options }, check.signature);
    } catch {
      // An unusable key (off its curve) or a malformed signature: not a valid signature.
      return false;
    }
  }

  /** Workers running now (0 when checks run on the event loop). */
  get running(): number {
    return this.workers.length;
  }

  /** Keys the event loop keeps imported (a pool of no workers). */
  get keysOnEventLoop(): number {
    return this.inlineKeys.size;
  }

  /** Workers that died (crashed, or could not start) so far. */
  get deaths(): number {
    return this.deathCount;
  }

  /** True when `signature` is the key's signature over `data`; never throws. */
  verify(cacheKey: string, key: CredentialKey, data: Uint8Array, signature: Uint8Array): Promise<boolean> {
    const check: Check = { id: this.nextId++, cacheKey, key, data, signature };
    if (this.size === 0) return Promise.resolve(this.verifyOnEventLoop(check));
    const worker = this.pick();
    return worker ? worker.check(check) : Promise.resolve(verifyInline(check));
  }

  /** Forget the imported keys (tests; after bulk key changes). */
  clear(): void {
    this.inlineKeys.clear();
    for (const worker of this.workers) worker.clear();
  }

  /** The least busy worker, started if need be; none once workers have died too often (then checks run inline). */
  private pick(): SignatureWorker | undefined {
    if (this.workers.length < this.size && this.deathCount < MAX_WORKER_DEATHS) {
      const worker = new SignatureWorker(this.keyCacheSize, (dead) => {
        const i = this.workers.indexOf(dead);
        if (i >= 0) this.workers.splice(i, 1);
        this.deathCount++;
      });
      this.workers.push(worker);
      return worker;
    }
    let best = this.workers[0];
    for (const w of this.workers) if (w.load < best!.load) best = w;
    return best;
  }
}
