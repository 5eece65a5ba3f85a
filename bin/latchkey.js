#!/usr/bin/env -S node --max-semi-space-size=4 --v8-pool-size=2 --heap-growing-percent=40 --no-minor-gc-task
// The flags are SERVER_NODE_FLAGS (src/runtime.ts): a smaller V8 young generation (24 MiB less resident memory), two
// V8 helper threads instead of four (3–7 MiB less) and an old generation that grows 40 % between full GCs (RSS flat
// under load instead of growing until V8's first full GC; half the full GCs of 20 % under token grants).
// Runs src/main.ts as JavaScript that esbuild (a runtime dependency) bundles on the first start after the sources
// change, into src/.built-<fingerprint>/ (one level below src/, so paths modules take from import.meta.url hold), so
// `latchkey` works from an install without a build step. Bundled, the server holds about 20–35 MiB less than through
// tsx, whose module-hooks thread is a V8 isolate of its own keeping every transformed module (BENCHMARKS.md, server
// memory). Where src/ cannot be written, or with LATCHKEY_RUN_TYPESCRIPT=1, it runs the TypeScript through tsx, given
// the project's tsconfig.json (by default tsx reads the current directory's, and without ours the pages' JSX would not
// compile for Preact).
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { asyncContextFrameFlag } from './asyncContextFrame.js';

// `serve` on Node.js 22 starts again in the same process (same pid), with the same arguments plus
// --experimental-async-context-frame (bin/asyncContextFrame.js says where; src/runtime.ts says why). A command line or
// NODE_OPTIONS that already names async-context-frame either way is left as it is. Preloads (--import, --require in
// NODE_OPTIONS) run in both images. Where the restart is refused (the permission model without
// --allow-child-process), the server runs as it is, and says so; a failed execve system call aborts the process
// (Node.js 22 cannot return from it), as a failed start would.
const frameFlag = asyncContextFrameFlag();
if (
  frameFlag &&
  process.argv[2] === 'serve' &&
  typeof process.execve === 'function' &&
  ![...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((flag) => flag.includes('async-context-frame'))
) {
  try {
    process.execve(process.execPath, [process.execPath, ...process.execArgv, frameFlag, ...process.argv.slice(1)], process.env);
  } catch (error) {
    process.stderr.write(`latchkey: serving without ${frameFlag} (could not restart with it: ${error?.code ?? error})\n`);
  }
}

const root = fileURLToPath(new URL('..', import.meta.url));
const src = join(root, 'src');

/** A fingerprint of everything the bundle is made from: each source file's path, size and modification time. */
function fingerprint() {
  const hash = createHash('sha256');
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (entry.name.startsWith('.')) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (/\.tsx?$/.test(entry.name) && !/\.test\.tsx?$/.test(entry.name)) {
        const { size, mtimeMs } = statSync(path);
        hash.update(`${path}\0${size}\0${mtimeMs}\n`);
      }
    }
  };
  walk(src);
  for (const file of ['package.json', 'tsconfig.json']) hash.update(`${file}\0${statSync(join(root, file)).mtimeMs}\n`);
  return hash.digest('hex').slice(0, 16);
}

async function builtMain() {
  const dir = join(src, `.built-${fingerprint()}`);
  if (!existsSync(join(dir, 'main.js'))) {
    const { build } = await import('esbuild');
    // Built beside the final directory and renamed into place, so two processes starting at once never see half a bundle.
    const temporary = mkdtempSync(join(src, '.building-'));
    try {
      await build({
        entryPoints: [join(src, 'main.ts')],
        bundle: true,
        platform: 'node',
        format: 'esm',
        packages: 'external',
        // Chunks, so what main.ts imports on demand (the server, each command's modules and packages) still loads on demand.
        splitting: true,
        outdir: temporary,
        tsconfig: join(root, 'tsconfig.json'),
        sourcemap: 'linked',
        logLevel: 'error',
      });
      // Readable by every user (mkdtemp makes it private): a bundle built by one user (an image's build step) serves
      // the server's user too.
      chmodSync(temporary, 0o755);
      try {
        renameSync(temporary, dir);
      } catch (error) {
        // Another process renamed its bundle into place first.
        if (!['EEXIST', 'ENOTEMPTY'].includes(error?.code)) throw error;
      }
    } finally {
      rmSync(temporary, { recursive: true, force: true });
    }
    // Bundles of earlier sources, unless made in the last ten minutes: a process that started from one may still be
    // loading its chunks (a started server or command has loaded all it needs: code under src/ is never imported
    // lazily after start; only packages are, and they stay outside the bundle). One that can't be removed (another
    // user's) stays.
    for (const name of readdirSync(src)) {
      const old = join(src, name);
      try {
        if (name.startsWith('.built-') && old !== dir && Date.now() - statSync(old).mtimeMs > 10 * 60_000) rmSync(old, { recursive: true, force: true });
      } catch {
        // Left for its owner.
      }
    }
  }
  return import(pathToFileURL(join(dir, 'main.js')).href);
}

async function typeScriptMain() {
  const { register } = await import('tsx/esm/api');
  register({ tsconfig: fileURLToPath(new URL('../tsconfig.json', import.meta.url)) });
  return import('../src/main.ts');
}

let main;
if (process.env.LATCHKEY_RUN_TYPESCRIPT !== '1') {
  try {
    main = await builtMain();
  } catch (error) {
    if (!['EACCES', 'EPERM', 'EROFS'].includes(error?.code)) throw error;
    process.stderr.write(`latchkey: running the TypeScript through tsx (src/ is not writable for the bundle: ${error.code})\n`);
  }
}
main ??= await typeScriptMain();
await main.runAsProgram();
