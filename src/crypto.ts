import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** A random token of `bytes` bytes (default 32 = 256 bits), base64url. */
export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** Several random tokens of the given sizes in bytes, base64url, from one call to the CSPRNG (each call has a fixed cost). */
export function randomTokens(...sizes: number[]): string[] {
  const bytes = randomBytes(sizes.reduce((a, b) => a + b, 0));
  let offset = 0;
  return sizes.map((size) => bytes.subarray(offset, (offset += size)).toString('base64url'));
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
