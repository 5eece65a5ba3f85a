/**
 * The CPU floor the benchmarks read their figures against: Node's own ES256 verify on this machine, now
 * (bench/signin.ts, bench/tokens.ts).
 */
import { createHash, generateKeyPairSync, sign, verify } from 'node:crypto';

/**
 * Node's own ES256 verify: one cached KeyObject, DER signatures, a message the size WebAuthn signs (37 + 32 bytes).
 * The rate is wall-clock and moves with whatever else the machine does; the CPU time per verify moves much less, so
 * the floor is taken from that.
 */
export function measureRawVerify(ms: number): number {
  return measureRawVerifyCost(ms).perSecond;
}

export function measureRawVerifyCost(ms: number): { perSecond: number; cpuUs: number } {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const message = Buffer.concat([createHash('sha256').update('localhost').digest(), Buffer.from([0x05, 0, 0, 0, 1]), createHash('sha256').update('{}').digest()]);
  const signature = sign('sha256', message, privateKey);
  for (let i = 0; i < 500; i++) verify('sha256', message, publicKey, signature);
  let n = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < ms) {
    for (let i = 0; i < 200; i++) if (verify('sha256', message, publicKey, signature)) n++;
    elapsed = performance.now() - start;
  }
  const cpu = process.cpuUsage(cpu0);
  return { perSecond: n / (elapsed / 1000), cpuUs: (cpu.user + cpu.system) / n };
}

