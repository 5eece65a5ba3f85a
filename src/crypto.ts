import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * CSPRNG output drawn a few kilobytes at a time, as Node's own `randomUUID`
 * does: each call into OpenSSL has a fixed cost, several per sign-in
 * (BENCHMARKS.md). Every byte is handed out once: the pool is replaced, never
 * refilled in place.
 */
const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let poolOffset = 0;

/** Where the next `size` unused bytes of the pool start; a new pool when this one has too few left. */
function drawFromPool(size: number): number {
  if (poolOffset + size > pool.length) {
    pool = randomBytes(POOL_BYTES);
    poolOffset = 0;
  }
  const at = poolOffset;
  poolOffset += size;
  return at;
}

/** `size` fresh random bytes (a copy of its own). */
export function randomBytesPooled(size: number): Buffer {
  if (size > 256) return randomBytes(size);
  const at = drawFromPool(size);
  return Buffer.from(pool.subarray(at, at + size));
}

/** A random token of `bytes` bytes (default 32 = 256 bits), base64url. */
export function randomToken(bytes = 32): string {
  if (bytes > 256) return randomBytes(bytes).toString('base64url');
  const at = drawFromPool(bytes);
  return pool.toString('base64url', at, at + bytes);
}

/** Several random tokens of the given sizes in bytes, base64url. */
export function randomTokens(...sizes: number[]): string[] {
  return sizes.map((size) => randomToken(size));
}

/** Tokens are stored as their SHA-256 only, so a database leak reveals no usable link or session. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

export function hmac(secret: string, message: string): string {
  return createHmac('sha256', secret).update(message).digest('base64url');
}

export function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}
