/**
 * verifyAssertion in this process, next to the library path, for one ES256
 * passkey: the cost of §7.2 verification without HTTP or SQL. Calls run 16 at
 * a time, as a busy server's would; what limits one server process is the
 * event-loop time per call, so that is reported next to the CPU time (which
 * includes libuv's thread pool).
 */
import { performance } from 'node:perf_hooks';
import { verifyAssertion, verifyAssertionWithLibrary, type AssertionInput } from '../src/webauthn/verifyAssertion.js';
import { SignatureWorkerPool } from '../src/webauthn/signatureWorker.js';
import { makeUsers } from './seed.js';

const CONCURRENCY = 16;

interface Rate {
  perSecond: number;
  eventLoopMicros: number;
  cpuMicros: number;
}

async function rate(fn: (input: AssertionInput) => Promise<{ ok: boolean }>, input: AssertionInput, ms: number): Promise<Rate> {
  for (let i = 0; i < 200; i++) if (!(await fn(input)).ok) throw new Error('benchmark assertion did not verify');
  let n = 0;
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  // The clock, not a timer: checked on the event loop (LATCHKEY_SIGNATURE_WORKERS=0) a verification settles in a
  // microtask, so a loop of them would never let a timer fire.
  const deadline = start + ms;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < deadline) {
        await fn(input);
        n++;
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  const elu = performance.eventLoopUtilization(elu0);
  const cpu = process.cpuUsage(cpu0);
  return { perSecond: n / seconds, eventLoopMicros: (elu.active * 1000) / n, cpuMicros: (cpu.user + cpu.system) / n };
}

export async function measureVerifyAssertion(ms: number): Promise<string[]> {
  const origin = 'http://localhost:3000';
  const { users, rows } = makeUsers(1, origin, 'localhost');
  const challenge = Buffer.alloc(32, 7).toString('base64url');
  const response = users[0]!.authenticator.getAssertion({ challenge, rpId: 'localhost', allowCredentials: [] });
  const a = rows[0]!.authenticator;
  const input: AssertionInput = {
    response,
    expectedChallenge: challenge,
    expectedOrigin: origin,
    expectedRpId: 'localhost',
    authenticator: { credential_id: a.credential_id, public_key: a.public_key, counter: 0, transports: a.transports },
  };
  // With a key cache (LATCHKEY_PASSKEY_KEY_CACHE): the key imported once and kept.
  const keeping = new SignatureWorkerPool(1, 0);
  const cached = await rate((i) => verifyAssertion({ ...i, signatures: keeping }), input, ms);
  // The default (no key cache), as a credential's first use with one: the COSE key decoded and imported for the check.
  const uncached = await rate(verifyAssertion, input, ms);
  const library = await rate(verifyAssertionWithLibrary, input, ms);
  const line = (label: string, r: Rate) =>
    `${label.padEnd(44)}${r.perSecond.toFixed(0).padStart(6)}/s  event loop ${r.eventLoopMicros.toFixed(0).padStart(3)} µs, CPU ${r.cpuMicros.toFixed(0).padStart(3)} µs per call`;
  return [
    line('verifyAssertion, key cached:', cached),
    line('verifyAssertion, key not cached (default):', uncached),
    line('verifyAuthenticationResponse (library):', library),
  ];
}
