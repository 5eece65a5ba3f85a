#!/usr/bin/env -S node --max-semi-space-size=4
// The flag is SERVER_NODE_FLAGS (src/runtime.ts): a smaller V8 young generation, 24 MiB less resident memory.
// Runs the TypeScript entry point through tsx (a runtime dependency), so `latchkey` works from an install without a build step.
// tsx is given the project's tsconfig.json: by default it reads the current directory's, and without ours the pages'
// JSX would not compile for Preact.
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';
register({ tsconfig: fileURLToPath(new URL('../tsconfig.json', import.meta.url)) });
const { runAsProgram } = await import('../src/main.ts');
await runAsProgram();
