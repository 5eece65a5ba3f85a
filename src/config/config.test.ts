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
    expect(c.passwordSignIn).toBe('with-app');
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

  it('lets a password sign in alone only when LATCHKEY_PASSWORD_SIGNIN=alone', () => {
    expect(loadConfig({ LATCHKEY_PASSWORD_SIGNIN: 'alone' }).passwordSignIn).toBe('alone');
    expect(loadConfig({ LATCHKEY_PASSWORD_SIGNIN: ' with-app ' }).passwordSignIn).toBe('with-app');
    expect(loadConfig({ LATCHKEY_PASSWORD_SIGNIN: '' }).passwordSignIn).toBe('with-app');
  });

  it('asks people without a passkey to set one up every 7 days unless told otherwise; 0 never asks', () => {
    expect(loadConfig({}).passkeyPromptSeconds).toBe(7 * 86_400);
    expect(loadConfig({ LATCHKEY_PASSKEY_PROMPT_DAYS: '0' }).passkeyPromptSeconds).toBe(0);
    expect(loadConfig({ LATCHKEY_PASSKEY_PROMPT_DAYS: '30' }).passkeyPromptSeconds).toBe(30 * 86_400);
    for (const bad of ['-1', '366', 'weekly', '1.5']) {
      expect(() => loadConfig({ LATCHKEY_PASSKEY_PROMPT_DAYS: bad })).toThrow(/^LATCHKEY_PASSKEY_PROMPT_DAYS: /);
    }
  });

  it('retries webhooks on Standard Webhooks\' schedule (about a day) unless told otherwise, and polls every second', () => {
    const c = loadConfig({});
    expect(c.webhookRetrySeconds).toEqual([0, 5, 300, 1800, 7200, 18000, 36000, 36000]);
    expect(c.webhookRetrySeconds.reduce((a, b) => a + b, 0)).toBeGreaterThan(24 * 3600);
    expect(c.webhookPollSeconds).toBe(1);
    expect(loadConfig({ LATCHKEY_WEBHOOK_RETRY_SECONDS: '0, 1,2' }).webhookRetrySeconds).toEqual([0, 1, 2]);
    expect(loadConfig({ LATCHKEY_WEBHOOK_POLL_SECONDS: '0' }).webhookPollSeconds).toBe(0);
    for (const bad of ['0,-5', 'soon', '0,,5', '1.5']) {
      expect(() => loadConfig({ LATCHKEY_WEBHOOK_RETRY_SECONDS: bad })).toThrow(/^LATCHKEY_WEBHOOK_RETRY_SECONDS: /);
    }
  });

  it('keeps no imported passkey key and a 4 MiB SQLite page cache unless told otherwise', () => {
    const c = loadConfig({});
    expect(c.passkeyKeyCacheSize).toBe(0);
    expect(c.sqliteCacheMiB).toBe(4);
    expect(loadConfig({ LATCHKEY_PASSKEY_KEY_CACHE: '10000', LATCHKEY_SQLITE_CACHE_MIB: '64' })).toMatchObject({ passkeyKeyCacheSize: 10_000, sqliteCacheMiB: 64 });
    for (const bad of ['-1', 'lots', '1.5']) expect(() => loadConfig({ LATCHKEY_PASSKEY_KEY_CACHE: bad })).toThrow(/^LATCHKEY_PASSKEY_KEY_CACHE: /);
    expect(loadConfig({}).signatureWorkers).toBe(0);
    expect(loadConfig({ LATCHKEY_SIGNATURE_WORKERS: '0' }).signatureWorkers).toBe(0);
    expect(loadConfig({ LATCHKEY_SIGNATURE_WORKERS: '3' }).signatureWorkers).toBe(3);
    for (const bad of ['-1', 'two', '17']) expect(() => loadConfig({ LATCHKEY_SIGNATURE_WORKERS: bad })).toThrow(/^LATCHKEY_SIGNATURE_WORKERS: /);
    for (const bad of ['0', '1.5']) expect(() => loadConfig({ LATCHKEY_SQLITE_CACHE_MIB: bad })).toThrow(/^LATCHKEY_SQLITE_CACHE_MIB: /);
  });

  it('logs answers of 400 and above at info unless LATCHKEY_ACCESS_LOG says all or off', () => {
    expect(loadConfig({}).accessLog).toBe('errors');
    for (const mode of ['all', 'errors', 'off'] as const) expect(loadConfig({ LATCHKEY_ACCESS_LOG: ` ${mode} ` }).accessLog).toBe(mode);
    for (const bad of ['yes', 'ALL', 'info']) expect(() => loadConfig({ LATCHKEY_ACCESS_LOG: bad })).toThrow(/^LATCHKEY_ACCESS_LOG: /);
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
    ['LATCHKEY_PASSWORD_SIGNIN', 'on-its-own'],
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

  it('LATCHKEY_RA_CONTACT_URL: an https page or a mailto: address, else refused naming the variable', () => {
    expect(loadConfig({}).raContactUrl).toBeUndefined();
    expect(loadConfig({ LATCHKEY_RA_CONTACT_URL: 'https://ra.example.org/contact' }).raContactUrl).toBe('https://ra.example.org/contact');
    expect(loadConfig({ LATCHKEY_RA_CONTACT_URL: ' mailto:ra@example.org?subject=Passkey ' }).raContactUrl).toBe('mailto:ra@example.org?subject=Passkey');
    expect(loadConfig({ LATCHKEY_RA_CONTACT_URL: 'http://localhost:8080/ra' }).raContactUrl).toBe('http://localhost:8080/ra');
    for (const value of ['http://ra.example.org/', 'javascript:alert(1)', '/ra', 'ra.example.org', 'mailto:', 'mailto:nobody', 'https://user:pw@ra.example.org/', 'ftp://ra.example.org/']) {
      let error: unknown;
      try {
        loadConfig({ LATCHKEY_RA_CONTACT_URL: value });
      } catch (err) {
        error = err;
      }
      expect(error, value).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).variable).toBe('LATCHKEY_RA_CONTACT_URL');
    }
  });
});
