/**
 * The CPU floor the benchmarks read their figures against: Node's own ES256 verify rate on this machine, now
 * (shared by bench/tokens.ts; bench/signin.ts keeps its own copy for now).
 */
import { createHash, generateKeyPairSync, sign, verify } from 'node:crypto';

/** Node's own ES256 verify rate: one cached KeyObject, DER signatures, a message the size WebAuthn signs (37 + 32 bytes). */
export function measureRawVerify(ms: number): number {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const message = Buffer.concat([createHash('sha256').update('localhost').digest(), Buffer.from([0x05, 0, 0, 0, 1]), createHash('sha256').update('{}').digest()]);
  const signature = sign('sha256', message, privateKey);
  for (let i = 0; i < 500; i++) verify('sha256', message, publicKey, signature);
  let n = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < ms) {
    for (let i = 0; i < 200; i++) if (verify('sha256', message, publicKey, signature)) n++;
    elapsed = performance.now() - start;
  }
  return n / (elapsed / 1000);
}
