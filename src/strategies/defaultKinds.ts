/**
 * The kinds of authenticator Latchkey ships, in the order pages list them. A
 * new kind is a folder under src/strategies/ with a `kind.ts`, added here.
 */
import type { AnyKind } from './authenticatorKind.js';
import { linkedAccountKind } from './linkedAccount/kind.js';
import { passkeyKind } from './passkey/kind.js';
import { passwordKind } from './password/kind.js';
import { totpKind } from './totp/kind.js';

export const defaultKinds: readonly AnyKind[] = [passkeyKind, totpKind, linkedAccountKind, passwordKind];
