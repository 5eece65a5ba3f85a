import { afterEach, describe, expect, it, vi } from 'vitest';
import { readFileSync } from 'node:fs';
import { SERVER_NODE_FLAGS, unsupportedRuntime, withoutProviderRuntimeWarning } from './runtime.js';

describe('supported Node.js versions', () => {
  afterEach(() => vi.restoreAllMocks());

  it('warns on Node.js before 22 and on releases that are not LTS, naming what is supported', () => {
    expect(unsupportedRuntime({ version: 'v22.23.5', lts: 'Jod' })).toBeUndefined();
    expect(unsupportedRuntime({ version: 'v24.11.0', lts: 'Krypton' })).toBeUndefined();
    expect(unsupportedRuntime({ version: 'v20.20.2', lts: 'Iron' })).toMatch(/^Node\.js v20\.20\.2 is too old: Latchkey supports Node\.js 22 or a later LTS release/);
    expect(unsupportedRuntime({ version: 'v25.1.0' })).toMatch(/^Node\.js v25\.1\.0 is not a long-term-support release/);
  });

  it("replaces oidc-provider's runtime warning while loading, and leaves every other warning alone", async () => {
    const seen: unknown[] = [];
    vi.spyOn(console, 'warn').mockImplementation((...args: unknown[]) => void seen.push(args[0]));
    const loaded = await withoutProviderRuntimeWarning(async () => {
      // As oidc-provider prints it on a terminal (in colour) and not.
      console.warn('\x1b[31;1moidc-provider WARNING: Unsupported runtime. Use Node.js v22.x LTS, or a later LTS release.\x1b[0m');
      console.warn('oidc-provider WARNING: Unsupported runtime. Use Node.js v22.x LTS, or a later LTS release.');
      console.warn('something else');
      return 'module';
    });
    expect(loaded).toBe('module');
    expect(seen).toEqual(['something else']);
    console.warn('after loading');
    expect(seen).toEqual(['something else', 'after loading']);
  });
});

describe('the server\'s Node.js flags', () => {
  it('are given by the latchkey command\'s first line and by npm start, which V8 reads before the heap exists', () => {
    const shebang = readFileSync(new URL('../bin/latchkey.js', import.meta.url), 'utf8').split('\n')[0]!;
    const start = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> }).scripts.start!;
    expect(SERVER_NODE_FLAGS.length).toBeGreaterThan(0);
    // env -S splits the rest of the line into arguments (coreutils 8.30 and later, BSD and macOS).
    expect(shebang).toBe(`#!/usr/bin/env -S node ${SERVER_NODE_FLAGS.join(' ')}`);
    expect(start).toBe(`node ${SERVER_NODE_FLAGS.join(' ')} --import tsx src/main.ts serve`);
  });
});
