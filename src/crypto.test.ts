import { describe, expect, it } from 'vitest';
import { randomBytesPooled, randomToken, randomTokens } from './crypto.js';

describe('random tokens from the CSPRNG pool', () => {
  it('never hand out the same bytes twice, across many pool refills', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20_000; i++) seen.add(randomToken(32));
    for (const size of [1, 12, 16, 255, 256, 257, 5000]) {
      const token = randomToken(size);
      expect(Buffer.from(token, 'base64url')).toHaveLength(size);
      seen.add(token);
    }
    expect(seen.size).toBe(20_007);
  });

  it('give each caller bytes of its own', () => {
    const a = randomBytesPooled(32);
    const copy = Buffer.from(a);
    a.fill(0);
    const b = randomBytesPooled(32);
    expect(b.equals(Buffer.alloc(32))).toBe(false);
    expect(b.equals(copy)).toBe(false);
    expect(randomBytesPooled(300)).toHaveLength(300);
    expect(randomTokens(32, 12).map((t) => Buffer.from(t, 'base64url').length)).toEqual([32, 12]);
  });
});
