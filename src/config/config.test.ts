import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './index.js';

describe('loadConfig', () => {
  it('has documented defaults', () => {
    const c = loadConfig({});
    expect(c.port).toBe(3000);
    expect(c.origin).toBe('http://localhost:3000');
    expect(c.rpId).toBe('localhost');
    expect(c.databaseUrl).toBe('sqlite:./data/latchkey.db');
    expect(c.signup).toBe('open');
    expect(c.sessionIdleSeconds).toBe(3600);
    expect(c.sessionMaxSeconds).toBe(24 * 3600);
    expect(c.reauthSeconds).toBe(300);
    expect(c.fidoConformance).toBe(false);
    expect(c.secureCookies).toBe(false);
  });

  it('ships the FIDO metadata root and downloads no metadata unless told to', () => {
    const c = loadConfig({});
    expect(c.fidoMetadataRoot).toMatch(/\/src\/webauthn\/metadata\/fido-mds-root\.pem$/);
    expect(readFileSync(c.fidoMetadataRoot, 'utf8')).toContain('-----BEGIN CERTIFICATE-----');
    expect(c.fidoMetadataUrl).toBeUndefined();
    expect(c.trustReloadSeconds).toBe(30);
    expect(loadConfig({ LATCHKEY_FIDO_METADATA_URL: 'https://mds3.fidoalliance.org/' }).fidoMetadataUrl).toBe('https://mds3.fidoalliance.org/');
    expect(loadConfig({ LATCHKEY_FIDO_METADATA_URL: 'http://127.0.0.1:8080/blob' }).fidoMetadataUrl).toBe('http://127.0.0.1:8080/blob');
  });

  it('asks people without a passkey to set one up every 7 days unless told otherwise; 0 never asks', () => {
    expect(loadConfig({}).passkeyPromptDays).toBe(7);
    expect(loadConfig({ LATCHKEY_PASSKEY_PROMPT_DAYS: '0' }).passkeyPromptDays).toBe(0);
    expect(loadConfig({ LATCHKEY_PASSKEY_PROMPT_DAYS: '30' }).passkeyPromptDays).toBe(30);
    for (const bad of ['-1', '366', 'weekly', '1.5']) {
      expect(() => loadConfig({ LATCHKEY_PASSKEY_PROMPT_DAYS: bad })).toThrow(/^LATCHKEY_PASSKEY_PROMPT_DAYS: /);
    }
  });

  it('derives the origin from PORT and the RP ID from the origin host', () => {
    expect(loadConfig({ PORT: '8080' }).origin).toBe('http://localhost:8080');
    const c = loadConfig({ LATCHKEY_ORIGIN: 'https://id.example.org' });
    expect(c.rpId).toBe('id.example.org');
    expect(c.secureCookies).toBe(true);
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['LATCHKEY_ORIGIN', 'not a url'],
    ['LATCHKEY_ORIGIN', 'http://id.example.org'],
    ['LATCHKEY_ORIGIN', 'https://192.168.1.4'],
    ['LATCHKEY_ORIGIN', 'https://id.example.org/path'],
    ['DATABASE_URL', 'mysql://x'],
    ['DATABASE_URL', 'sqlite:'],
    ['LATCHKEY_SIGNUP', 'sometimes'],
    ['LATCHKEY_FIDO_CONFORMANCE', 'maybe'],
    ['LATCHKEY_REAUTH_MINUTES', '0'],
    ['LATCHKEY_FIDO_METADATA_DIR', '/nonexistent/metadata'],
    ['LATCHKEY_FIDO_METADATA_ROOT', '/nonexistent/root.pem'],
    ['LATCHKEY_FIDO_METADATA_URL', 'http://mds3.fidoalliance.org/'],
    ['LATCHKEY_FIDO_METADATA_URL', 'https://user:secret@mds.example.org/'],
    ['LATCHKEY_FIDO_METADATA_URL', 'mds3.fidoalliance.org'],
    ['LATCHKEY_TRUST_RELOAD_SECONDS', '0'],
  ])('refuses %s=%s naming the variable', (name, value) => {
    let error: unknown;
    try {
      loadConfig({ [name]: value });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(name);
    expect((error as ConfigError).message.startsWith(`${name}: `)).toBe(true);
  });
});
