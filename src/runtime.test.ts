import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asyncContextFrameFlag, SERVER_NODE_FLAGS, serverNodeFlags, unsupportedRuntime, withoutProviderRuntimeWarning } from './runtime.js';
import { spawnServe } from '../test/support/serve.js';

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
    expect(start).toBe(`node ${SERVER_NODE_FLAGS.join(' ')} bin/latchkey.js serve`);
  });
});

describe('AsyncLocalStorage without promise hooks', () => {
  const FLAG = '--experimental-async-context-frame';

  it('is asked for on Node.js 22 from 22.15, which can restart in place, and not on 24 and later, which refuse the flag', () => {
    expect(asyncContextFrameFlag('22.14.0', 'linux')).toBeUndefined();
    expect(asyncContextFrameFlag('22.15.0', 'linux')).toBe(FLAG);
    expect(asyncContextFrameFlag('v22.23.5', 'darwin')).toBe(FLAG);
    expect(asyncContextFrameFlag('22.23.5', 'win32')).toBeUndefined();
    expect(asyncContextFrameFlag('20.20.2', 'linux')).toBeUndefined();
    expect(asyncContextFrameFlag('24.11.0', 'linux')).toBeUndefined();
    expect(asyncContextFrameFlag('25.1.0', 'linux')).toBeUndefined();
    expect(serverNodeFlags('22.23.5', 'linux')).toEqual([...SERVER_NODE_FLAGS, FLAG]);
    expect(serverNodeFlags('24.11.0', 'linux')).toEqual([...SERVER_NODE_FLAGS]);
  });

  it('is how these tests run too (vitest.config.ts), as the server in service runs', () => {
    expect(process.execArgv.includes(FLAG)).toBe(asyncContextFrameFlag() !== undefined);
  });

  // The real command, as operators start it: on Node.js 22 it runs again in the same process (same pid) with the flag,
  // and oidc-provider (which runs every request in an AsyncLocalStorage) answers; named either way in NODE_OPTIONS,
  // the choice is the operator's. The command line is read from /proc (Linux).
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  const served = async (env: Record<string, string> = {}) => {
    const dir = mkdtempSync(join(tmpdir(), 'latchkey-frame-'));
    dirs.push(dir);
    const { child, port } = await spawnServe({ cwd: dir, env: { DATABASE_URL: `sqlite:${join(dir, 'latchkey.db')}`, LOG_LEVEL: 'info', LATCHKEY_WEBHOOK_POLL_SECONDS: '0', NODE_OPTIONS: '', ...env } });
    try {
      const commandLine = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      const discovery = await fetch(`http://127.0.0.1:${port}/.well-known/openid-configuration`);
      return { commandLine, discovery: discovery.status };
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  };
  const linux = process.platform === 'linux';
  const restarts = asyncContextFrameFlag() !== undefined;

  it.runIf(linux && restarts)('is how latchkey serve runs on Node.js 22, in the process it was started as', { timeout: 90_000 }, async () => {
    const { commandLine, discovery } = await served();
    expect(commandLine).toContain(FLAG);
    expect(commandLine.slice(-2)).toEqual([join(import.meta.dirname, '../bin/latchkey.js'), 'serve']);
    expect(discovery).toBe(200);

    const optedOut = await served({ NODE_OPTIONS: '--no-experimental-async-context-frame' });
    expect(optedOut.commandLine).not.toContain(FLAG);
    expect(optedOut.discovery).toBe(200);
  });

  it.runIf(linux && !restarts)('is left out where Node.js has no such flag or cannot restart in place', { timeout: 90_000 }, async () => {
    const { commandLine, discovery } = await served();
    expect(commandLine).not.toContain(FLAG);
    expect(discovery).toBe(200);
  });
});

describe("worker threads' young generation under the server's flags", () => {
  // A process started with SERVER_NODE_FLAGS starts a worker that asks for a 2 MiB young generation and allocates
  // enough short-lived objects to grow it to its limit; it prints the worker's and its own committed new space (MiB).
  const newSpaces = (clearFlag: boolean): { worker: number; main: number } => {
    const script = `
      const { Worker } = require('node:worker_threads');
      const churn = () => { let keep = []; for (let i = 0; i < 2e6; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 50000) keep = []; } };
      const newSpace = () => require('node:v8').getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size / 1048576;
      (async () => {
        if (${clearFlag}) (await import(process.env.RUNTIME_MODULE)).letWorkersSizeTheirYoungGeneration();
        const source = '(' + churn + ')(); require("node:worker_threads").parentPort.postMessage((' + newSpace + ')())';
        const worker = new Worker(source, { eval: true, resourceLimits: { maxYoungGenerationSizeMb: 2 } });
        const fromWorker = await new Promise((resolve) => worker.once('message', resolve));
        churn();
        console.log(JSON.stringify({ worker: fromWorker, main: newSpace() }));
      })();
    `;
    const out = execFileSync(process.execPath, [...SERVER_NODE_FLAGS, '--import', 'tsx', '-e', script], {
      env: { ...process.env, RUNTIME_MODULE: new URL('./runtime.ts', import.meta.url).href },
      encoding: 'utf8',
    });
    return JSON.parse(out.trim().split('\n').pop()!) as { worker: number; main: number };
  };

  it("is the worker's own limit once letWorkersSizeTheirYoungGeneration() ran, and the main thread keeps the flag's", () => {
    const cleared = newSpaces(true);
    expect(cleared.worker).toBeLessThanOrEqual(2);
    expect(cleared.main).toBeLessThanOrEqual(8);
    // Without it the flag wins over the worker's limit (which is what the function is for).
    expect(newSpaces(false).worker).toBeGreaterThan(2);
  });
});

describe('the latchkey command', () => {
  const root = new URL('..', import.meta.url);
  const latchkey = (env: Record<string, string> = {}) =>
    execFileSync(process.execPath, [new URL('bin/latchkey.js', root).pathname, '--help'], { env: { ...process.env, ...env }, encoding: 'utf8' });
  const bundles = () => readdirSync(new URL('src/', root)).filter((name) => name.startsWith('.built-'));

  it('runs a bundle of src/ that it makes once per change of the sources, or the TypeScript when asked', () => {
    expect(latchkey()).toMatch(/^Usage: latchkey <command>/);
    const [bundle] = bundles().filter((name) => readdirSync(new URL(`src/${name}/`, root)).includes('main.js'));
    expect(bundle).toBeDefined();
    const made = statSync(new URL(`src/${bundle}/main.js`, root)).mtimeMs;
    expect(latchkey()).toMatch(/^Usage: latchkey <command>/);
    expect(statSync(new URL(`src/${bundle}/main.js`, root)).mtimeMs).toBe(made);
    expect(latchkey({ LATCHKEY_RUN_TYPESCRIPT: '1' })).toMatch(/^Usage: latchkey <command>/);
  });
});
