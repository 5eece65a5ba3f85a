/**
 * The one place that says which origins a WebAuthn ceremony may come from: LATCHKEY_ORIGIN first, then
 * LATCHKEY_RELATED_ORIGINS (WebAuthn L3 §5.11). Registration, sign-in, reauth and the shared response checks all
 * read it, and /.well-known/webauthn publishes it, so what the browser is told and what the server accepts can't drift.
 */
import type { Config } from '../config/index.js';

export interface AllowedOrigins {
  /** The service's own origin, then the related ones, in configuration order (the order /.well-known/webauthn lists). */
  list: readonly string[];
  /** The same, for the sign-in hot path's lookup. */
  set: ReadonlySet<string>;
}

const cache = new WeakMap<Pick<Config, 'origin' | 'relatedOrigins'>, AllowedOrigins>();

/** The origins a ceremony may come from; computed once per configuration object. */
export function allowedOrigins(config: Pick<Config, 'origin' | 'relatedOrigins'>): AllowedOrigins {
  let found = cache.get(config);
  if (!found) {
    const list = Object.freeze([config.origin, ...(config.relatedOrigins ?? [])]);
    found = { list, set: new Set(list) };
    cache.set(config, found);
  }
  return found;
}

/**
 * `{ origin }` for an audit record's detail when related origins are configured, so a record says which site a
 * passkey was used from; nothing otherwise, where it could only ever be LATCHKEY_ORIGIN.
 */
export function originDetail(config: Pick<Config, 'relatedOrigins'>, origin: string): { origin?: string } {
  return config.relatedOrigins.length > 0 ? { origin } : {};
}
