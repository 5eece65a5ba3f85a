/**
 * Instances sharing one database must share the secret key that seals what is stored (signing keys, service
 * secrets, authenticator-app secrets): one started with another key stops with one line naming the variable.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { ConfigError } from '../src/config/index.js';
import { Secret, TOTP } from 'otpauth';
import { hashPassword } from '../src/strategies/password/passwords.js';
import { newTotpSecret } from '../src/strategies/totp/totp.js';
import { createUser } from '../src/users/createUser.js';
import { createTestApp, insertApp, testConfig, TestBrowser } from './support/app.js';
import { testDatabases } from './support/databases.js';

const KEY_A = Buffer.alloc(32, 1).toString('base64url');
const KEY_B = Buffer.alloc(32, 2).toString('base64url');
const databases = await testDatabases();
const dir = mkdtempSync(join(tmpdir(), 'latchkey-second-instance-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.each(databases)('a second instance on the same database ($name)', (target) => {
  afterAll(() => target.cleanup());

  it.skipIf(target.skipReason)('with another secret key is refused at start, naming LATCHKEY_SECRET_KEY; with the same key it starts', async () => {
    const db = await target.open();
    await db.migrate();
    const first = await buildApp(testConfig({ LATCHKEY_SECRET_KEY: KEY_A }), { db, logger: false });
    await first.ready();
    const second = await buildApp(testConfig({ LATCHKEY_SECRET_KEY: KEY_B }), { db, logger: false }).catch((err: unknown) => err);
    expect(second).toBeInstanceOf(ConfigError);
    expect((second as ConfigError).variable).toBe('LATCHKEY_SECRET_KEY');
    expect((second as Error).message).toMatch(/^LATCHKEY_SECRET_KEY: .*the same LATCHKEY_SECRET_KEY/);
    expect((second as Error).message).not.toContain('\n');
    // A key file holding another key is named as the file.
    const keyFile = join(dir, `${target.name}.key`);
    writeFileSync(keyFile, KEY_B);
    const fromFile = await buildApp(testConfig({ LATCHKEY_SECRET_KEY: '', LATCHKEY_SECRET_KEY_FILE: keyFile }), { db, logger: false }).catch((err: unknown) => err);
    expect((fromFile as ConfigError).variable).toBe('LATCHKEY_SECRET_KEY_FILE');
    expect((fromFile as Error).message).toContain(keyFile);
    const same = await buildApp(testConfig({ LATCHKEY_SECRET_KEY: KEY_A }), { db, logger: false });
    await same.ready();
    await same.close();
    await first.close();
  });
});

describe('latchkey serve with another secret key', () => {
  it('exits 2 with one line naming LATCHKEY_SECRET_KEY', async () => {
    const env = { ...process.env, DATABASE_URL: `sqlite:${join(dir, 'cli.db')}`, LOG_LEVEL: 'silent', PORT: '3999', LATCHKEY_ORIGIN: 'http://localhost:3999' };
    const first = await buildApp(testConfig({ DATABASE_URL: env.DATABASE_URL, LATCHKEY_SECRET_KEY: KEY_A }), { logger: false });
    await first.ready();
    await first.close();
    const result = await promisify(execFile)(process.execPath, ['bin/latchkey.js', 'serve'], {
      cwd: new URL('..', import.meta.url).pathname,
      env: { ...env, LATCHKEY_SECRET_KEY: KEY_B },
    }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/^latchkey: configuration error: LATCHKEY_SECRET_KEY: /);
  });
});

describe('a stored sealed value that does not open while serving', () => {
  it('is a server failure (500, logged as one), not a message telling the operator to change the secret key', async () => {
    const logLines: { level: number; msg: string; err?: { message?: string; type?: string } }[] = [];
    const t = await createTestApp({ LATCHKEY_RATE_LIMIT_PER_MINUTE: '0' }, { logger: { level: 'info', stream: { write: (line: string) => void logLines.push(JSON.parse(line)) } } });
    try {
      const { store, secretBox, now } = t.app.latchkey;
      const user = await createUser(store, { email: 'app.person@example.org', displayName: 'App Person' }, now());
      await store.users.setPasswordHash(user.id, await hashPassword('correct horse battery'), now());
      const secret = newTotpSecret();
      const id = 'app-tampered';
      // Sealed for another row and moved here (as a tampered database would hold it): the key is right, the value is not.
      await insertApp(store, secretBox, { id, user_id: user.id, config: JSON.stringify({ sealedSecret: secretBox.seal(secret, 'totp:another-row'), lastStep: 0 }) }, secret);
      await store.users.setStatus(user.id, 'enrolled', now());
      const browser = new TestBrowser(t.app);
      await browser.get('/signin');
      const code = new TOTP({ secret: Secret.fromBase32(secret) }).generate({ timestamp: now() });
      const res = await browser.postJson('/signin/password', { email: user.email, password: 'correct horse battery', code });
      expect(res.statusCode).toBe(500);
      expect(res.json().error.code).toBe('internal');
      expect(res.body).not.toContain('SECRET_KEY');
      const failures = logLines.filter((l) => l.level >= 50);
      expect(failures.map((l) => l.msg)).toEqual(['request failed']);
      expect(failures[0]!.err?.type).toBe('SealedValueError');
      expect(failures[0]!.err?.message).not.toContain('LATCHKEY_SECRET_KEY');
    } finally {
      await t.close();
    }
  });
});
