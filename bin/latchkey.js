#!/usr/bin/env node
// Runs the TypeScript entry point through tsx (a runtime dependency), so `latchkey` works from an install without a build step.
import { register } from 'tsx/esm/api';
register();
await import('../src/main.ts');
