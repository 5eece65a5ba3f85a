import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/main.js';
import { createTestApp } from './support/app.js';
import { spawnServe } from './support/serve.js';

const run = promisify(execFile);
const root = new URL('..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'latchkey-cli-'));

/**
 * One `latchkey` command, run in this process (a new process per command cost 2–14 s on a slow machine), with
 * what it printed and its exit code. The tests that start the real bin are marked as such.
 */
async function cli(args: string[], env: Record<string, string> = {}) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
    env: { ...process.env, DATABASE_URL: `sqlite:${join(dir, 'cli.db')}`, LOG_LEVEL: 'silent', ...env },
  });
  return { code, stdout, stderr };
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('latchkey CLI', () => {
  it('adds services, rotates signing keys and reports the provider configuration', async () => {
    const env = { DATABASE_URL: `sqlite:${join(dir, 'oidc.db')}`, LATCHKEY_SECRET_KEY_FILE: join(dir, 'secret.key') };
    const bad = await cli(['services', 'add', '--name', 'Rota', '--redirect-uri', 'http://rota.example/cb', '--confidential'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('must be https://');
    const both = await cli(['services', 'add', '--name', 'Rota', '--redirect-uri', 'https://rota.example/cb', '--public', '--confidential'], env);
    expect(both.stderr).toContain('exactly one of --public or --confidential');
    const added = await cli(
      ['services', 'add', '--name', 'Rota', '--redirect-uri', 'https://rota.example/cb', '--redirect-uri', 'http://localhost:8080/cb', '--confidential', '--aal', '2', '--first-party'],
      env,
    );
    expect(added.code).toBe(0);
    expect(added.stdout).toMatch(/^client_id=[\w-]{22}\nclient_secret=[\w-]{43}\n$/);
    expect(added.stderr).toContain('shown only this once');
    const pub = await cli(['services', 'add', '--name', 'Kiosk', '--redirect-uri', 'https://kiosk.example/cb', '--public', '--aal', '1'], env);
    expect(pub.stdout).toMatch(/^client_id=[\w-]{22}\n$/);
    expect((await cli(['services', 'list'], env)).stdout).toMatch(/Rota\tconfidential\tAAL2\tfirst-party\thttps:\/\/rota\.example\/cb http:\/\/localhost:8080\/cb/);

    const first = await cli(['keys', 'rotate'], env);
    expect(first.code).toBe(0);
    const second = await cli(['keys', 'rotate'], env);
    expect(second.stdout).toMatch(/2 previous key\(s\) stay published until/); // one per algorithm

    const doctor = await cli(['doctor'], env);
    expect(doctor.code).toBe(0);
    expect(doctor.stdout).toContain('issuer                 http://localhost:3000');
    expect(doctor.stdout).toContain('PKCE                   required for every client, S256 only');
    expect(doctor.stdout).toMatch(/retired, published until/);
    expect(doctor.stdout).toContain('! the issuer http://localhost:3000 is not https');
    expect(doctor.stdout).toContain('plain-http loopback redirect URI (http://localhost:8080/cb)');
    expect(doctor.stdout).toContain('service "Kiosk" accepts AAL1 sign-ins');
    // What oidc-provider itself serves, read from its discovery document.
    const resolved = doctor.stdout.slice(doctor.stdout.indexOf('As oidc-provider resolves it'));
    expect(resolved).toMatch(/^\s+token_endpoint\s+http:\/\/localhost:3000\/oidc\/token$/m);
    expect(resolved).toMatch(/^\s+response_types_supported\s+code$/m);
    expect(resolved).toMatch(/^\s+grant_types_supported\s+authorization_code refresh_token$/m);
    expect(resolved).toMatch(/^\s+code_challenge_methods_supported\s+S256$/m);
    expect(resolved).toMatch(/^\s+id_token_signing_alg_values_supported\s+ES256 RS256$/m);
    expect(resolved).toMatch(/^\s+token_endpoint_auth_methods_supported\s+.*client_secret_basic.* none$/m);
    expect(resolved).toMatch(/^\s+acr_values_supported\s+http:\/\/idmanagement\.gov\/ns\/assurance\/aal\/1 /m);
    expect(resolved).toMatch(/^\s+claims_supported\s+sub acr amr auth_time email/m);
    expect(doctor.stdout).not.toContain('response type "');
    expect(doctor.stdout).not.toContain('PKCE method');
    expect(doctor.stdout).not.toContain('secret key');

    // The signing keys were sealed with secret.key: without it the doctor says so, and makes no new key file.
    const lostKey = join(dir, 'lost.key');
    const keyless = await cli(['doctor'], { ...env, LATCHKEY_SECRET_KEY_FILE: lostKey });
    expect(keyless.code).toBe(0);
    expect(keyless.stdout).toContain(`! the secret key file ${lostKey} is missing`);
    expect(keyless.stdout).toMatch(/^\s+response_types_supported\s+code$/m);
    expect(existsSync(lostKey)).toBe(false);

    const kioskId = /^client_id=([\w-]+)$/m.exec(pub.stdout)![1]!;
    const removed = await cli(['services', 'remove', kioskId], env);
    expect(removed.code).toBe(0);
    expect(removed.stdout).toBe(`Removed service Kiosk (${kioskId}).\n`);
    const services = (await cli(['services', 'list'], env)).stdout;
    expect(services).toContain('Rota');
    expect(services).not.toContain('Kiosk');
    const again = await cli(['services', 'remove', kioskId], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`latchkey: no service has the client id "${kioskId}" (see latchkey services list)\n`);
    expect((await cli(['services', 'remove'], env)).stderr).toContain('services remove needs one CLIENT_ID');
    const { openDatabase } = await import('../src/db/connect.js');
    const { Store } = await import('../src/db/store.js');
    const opened = openDatabase(env.DATABASE_URL);
    try {
      const events = await new Store(opened.kysely).audit.listByEvent('service.removed');
      expect(events).toHaveLength(1);
      expect(events[0]!.actor_user_id).toBeNull();
      expect(JSON.parse(events[0]!.detail)).toEqual({ clientId: kioskId, name: 'Kiosk', via: 'cli' });
    } finally {
      await opened.close();
    }
  });


  it('adds a Pending user and prints a single-use invite link for them', async () => {
    const added = await cli(['users', 'add', '--email', 'Mary@Example.com', '--name', 'Mary Seacole']);
    expect(added.code).toBe(0);
    expect(added.stdout).toContain('Created user Mary@Example.com (pending)');
    const duplicate = await cli(['users', 'add', '--email', 'mary@example.com', '--name', 'Mary']);
    expect(duplicate.code).toBe(1);
    expect(duplicate.stderr).toContain('already exists');
    const invite = await cli(['users', 'invite', '--email', 'mary@example.com'], { LATCHKEY_ORIGIN: 'https://id.example.org' });
    expect(invite.code).toBe(0);
    expect(invite.stdout.trim()).toMatch(/^https:\/\/id\.example\.org\/enrol\/[A-Za-z0-9_-]{43}$/);
    const list = await cli(['users', 'list']);
    expect(list.stdout).toMatch(/pending\s+Mary@Example\.com/);
  });

  it('adds a user with a National Insurance number, kept only as the HMAC the console and self-service use', async () => {
    const env = { DATABASE_URL: `sqlite:${join(dir, 'national-id.db')}` };
    const bad = await cli(['users', 'add', '--email', 'ni@example.com', '--name', 'Nia', '--national-id', 'QQ 12 34'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('latchkey: --national-id: Enter a National Insurance number in the correct format, like QQ 12 34 56 C\n');
    const empty = await cli(['users', 'add', '--email', 'ni@example.com', '--name', 'Nia', '--national-id', ' '], env);
    expect(empty.code).toBe(1);
    expect(empty.stderr).toBe("latchkey: --national-id needs a value: the person's National Insurance number\n");
    // Only users add takes it.
    expect((await cli(['users', 'invite', '--email', 'ni@example.com', '--national-id', 'QQ123456C'], env)).code).toBe(1);
    const added = await cli(['users', 'add', '--email', 'ni@example.com', '--name', 'Nia', '--national-id', 'qq 12-34-56 c'], env);
    expect(added.code).toBe(0);
    expect(added.stdout).toContain('Created user ni@example.com (pending)');
    const { openDatabase } = await import('../src/db/connect.js');
    const { Store } = await import('../src/db/store.js');
    const { hashNationalId } = await import('../src/users/nationalId.js');
    const opened = openDatabase(env.DATABASE_URL);
    try {
      const store = new Store(opened.kysely);
      const nia = (await store.users.findByEmail('ni@example.com'))!;
      // The server's own secret (the server reads the same row when it starts on this database).
      const secret = (await store.settings.get('server_secret'))!;
      expect(nia.national_id_hash).toBe(hashNationalId(secret, 'QQ123456C'));
      // Audited as the console's Add user is (so webhooks hear of it too).
      const records = await opened.kysely.selectFrom('audit_events').select(['event', 'detail']).where('subject_user_id', '=', nia.id).execute();
      expect(records.map((r) => [r.event, JSON.parse(r.detail)])).toEqual([['user.created', { nationalId: true, via: 'cli' }]]);
      expect(JSON.stringify(await opened.kysely.selectFrom('users').selectAll().execute())).not.toContain('QQ123456C');
      // Nothing half-made by the refused attempts.
      expect((await store.users.list(10)).map((u) => u.email)).toEqual(['ni@example.com']);
    } finally {
      await opened.close();
    }
  });

  it('makes an API token shown once on the last line, lists it, and revokes it so it stops working', async () => {
    const made = await cli(['api-tokens', 'create', '--name', 'HR feed', '--role', 'ra_agent_advanced', '--expires-days', '30']);
    expect(made.code).toBe(0);
    const token = made.stdout.trim().split('\n').at(-1)!;
    expect(token).toMatch(/^lk_[A-Za-z0-9_-]{43}$/);
    expect(made.stderr).toContain('shown only once');
    const listed = await cli(['api-tokens', 'list']);
    const id = listed.stdout.split('\n').find((line) => line.includes('HR feed'))!.split('\t')[0]!;
    expect(listed.stdout).toMatch(/HR feed\tra_agent_advanced\tactive/);
    expect(listed.stdout).not.toContain(token);
    const t = await createTestApp({ DATABASE_URL: `sqlite:${join(dir, 'cli.db')}` });
    try {
      const asToken = () => t.app.inject({ method: 'GET', url: '/api/v1/token', headers: { authorization: `Bearer ${token}` } });
      expect((await asToken()).json()).toMatchObject({ id, name: 'HR feed', role: 'ra_agent_advanced' });
      expect((await cli(['api-tokens', 'revoke', id])).stdout).toContain('Revoked API token HR feed');
      expect((await asToken()).statusCode).toBe(401);
    } finally {
      await t.close();
    }
    expect((await cli(['api-tokens', 'revoke', id])).code).toBe(1);
    expect((await cli(['api-tokens', 'create', '--name', 'x', '--role', 'admin'])).stderr).toContain('--role must be one of ra_manager');
    expect((await cli(['api-tokens', 'create', '--name', 'x', '--role', 'auditor', '--expires-days', '400'])).stderr).toContain('from 1 to 365 days');
  });

  it('imports users from a CSV file: refused lines stop it unless --skip-invalid, with a report by line', async () => {
    const env = { DATABASE_URL: `sqlite:${join(dir, 'import.db')}` };
    const file = join(dir, 'staff.csv');
    writeFileSync(file, 'Name,Email,NINO,Roles\nAda Lovelace,ada@example.org,QQ 12 34 56 C,auditor\nBad,not-an-email,,\nGrace Hopper,grace@example.org,,\n');
    const refused = await cli(['users', 'import', file], env);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain('Checked 3 rows of staff.csv.');
    expect(refused.stdout).toContain('line 3: Email: Enter an email address in the correct format, like name@example.com\n');
    expect(refused.stderr).toContain('nothing was imported: 1 line(s) refused. Correct them, or run again with --skip-invalid to import the 2 valid new user(s).');
    const dry = await cli(['users', 'import', file, '--dry-run', '--skip-invalid'], env);
    expect(dry.stdout).toContain('Would create: 2.');
    expect((await cli(['users', 'list'], env)).stdout).toBe('');

    const done = await cli(['users', 'import', '--skip-invalid', file], env);
    expect(done.code).toBe(0);
    expect(done.stdout).toContain('Created 2 users.\nSkipped 0 (already exist).\nRefused 1 line.\n');
    // Not a terminal: plain progress lines, not a bar.
    expect(done.stderr).toContain('Writing users: 2 of 2\n');
    expect((await cli(['users', 'list'], env)).stdout).toMatch(/pending\s+ada@example\.org\tAda Lovelace\npending\s+grace@example\.org/);

    // From standard input; everyone already there is skipped.
    let stdout = '';
    const again = await runCli(['users', 'import', '-'], {
      stdout: { write: (t: string) => (stdout += t) },
      stderr: { write: () => true },
      stdin: (async function* () {
        yield 'email,name\nADA@example.org,Ada\n';
      })(),
      env: { ...process.env, LOG_LEVEL: 'silent', ...env },
    });
    expect(again).toBe(0);
    expect(stdout).toContain('line 2: skipped: ADA@example.org: A user with this email address already exists');

    const missing = await cli(['users', 'import', join(dir, 'nope.csv')], env);
    expect(missing).toMatchObject({ code: 1, stderr: expect.stringContaining('cannot read') });
    writeFileSync(file, 'name,phone\nA,1\n');
    const badHeader = await cli(['users', 'import', file], env);
    expect(badHeader.stderr).toContain('staff.csv: The header row has a column we do not recognise: “phone”');
    expect((await cli(['users', 'import', file, '--template', 'x'], env)).stderr).toContain('--template goes with --send-enrolment-email');
  });

  it('creates a Pending user when inviting an unknown email', async () => {
    const created = await cli(['users', 'invite', '--email', 'new.person@example.com']);
    expect(created.code).toBe(0);
    expect(created.stdout).toContain('/enrol/');
    expect(created.stderr).toContain('Created user new.person@example.com (pending) named "new.person"');
    const named = await cli(['users', 'invite', '--email', 'named@example.com', '--name', 'Named Person']);
    expect(named.stderr).toContain('named "Named Person"');
    expect((await cli(['users', 'list'])).stdout).toMatch(/pending\s+new\.person@example\.com\tnew\.person/);
  });

  it('bootstraps the first RA Manager with a single-use link, once', async () => {
    const db = { DATABASE_URL: `sqlite:${join(dir, 'bootstrap.db')}` };
    const missing = await cli(['admin', 'bootstrap', '--email', 'boss@example.org'], db);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('needs --email and --name');
    const first = await cli(['admin', 'bootstrap', '--email', 'boss@example.org', '--name', 'Rosalind Franklin'], db);
    expect(first.code).toBe(0);
    expect(first.stdout.trim()).toMatch(/^http:\/\/localhost:3000\/enrol\/[A-Za-z0-9_-]{43}$/);
    expect(first.stderr).toContain('boss@example.org is now an RA Manager');
    const { openDatabase } = await import('../src/db/connect.js');
    const { Store } = await import('../src/db/store.js');
    const opened = openDatabase(db.DATABASE_URL);
    try {
      const store = new Store(opened.kysely);
      const boss = (await store.users.findByEmail('boss@example.org'))!;
      expect(boss.display_name).toBe('Rosalind Franklin');
      expect(await store.roles.listForUser(boss.id)).toEqual(['ra_manager']);
    } finally {
      await opened.close();
    }
    const second = await cli(['admin', 'bootstrap', '--email', 'other@example.org', '--name', 'Other'], db);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain('an RA Manager already exists');
    expect(second.stdout).toBe('');
  });

  it('says which migrations it applied', async () => {
    const fresh = await cli(['migrate'], { DATABASE_URL: `sqlite:${join(dir, 'migrate.db')}` });
    expect(fresh.stdout).toContain('Applied migrations: 0001_core, 0002_registration_authority, 0003_self_service, 0004_oidc, 0005_hot_path_indexes, 0006_signin_failures, 0007_authenticator_config, 0008_fido_metadata, 0009_passkey_prompt, 0010_api_tokens, 0011_webhooks, 0012_user_imports, 0013_scim, 0014_service_id_token_alg, 0015_challenges.');
    const again = await cli(['migrate'], { DATABASE_URL: `sqlite:${join(dir, 'migrate.db')}` });
    expect(again.stdout).toContain('no migration to apply');
  });

  it('stops with one line naming a bad variable', async () => {
    const bad = await cli(['migrate'], { LATCHKEY_SIGNUP: 'sometimes' });
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toContain('LATCHKEY_SIGNUP');
    const port = await cli(['migrate'], { PORT: 'eighty' });
    expect(port.code).toBe(2);
    expect(port.stderr).toContain('PORT');
    const db = await cli(['migrate'], { DATABASE_URL: 'postgres://127.0.0.1:1/nothing' });
    expect(db.code).toBe(2);
    expect(db.stderr.trim().split('\n')).toHaveLength(1);
    expect(db.stderr).toContain('DATABASE_URL: cannot open or migrate the database');
    const zero = await cli(['migrate'], { PORT: '0' });
    expect(zero.code).toBe(2);
    expect(zero.stderr).toContain('PORT: must be between 1 and 65535');
  });

  it('names DATABASE_URL when the SQLite file is not a database or its folder cannot be made', async () => {
    const notDb = join(dir, 'not-a-database.db');
    writeFileSync(notDb, 'these bytes are not an SQLite database, and there are more than a hundred of them to be sure it is read as one.');
    const blocker = join(dir, 'a-file');
    writeFileSync(blocker, 'x');
    for (const url of [`sqlite:${notDb}`, `sqlite:${join(blocker, 'latchkey.db')}`]) {
      const res = await cli(['migrate'], { DATABASE_URL: url });
      expect(res.code).toBe(2);
      expect(res.stderr.trim().split('\n')).toHaveLength(1);
      expect(res.stderr).toContain('DATABASE_URL: cannot open or migrate the database');
    }
  });

  it('explains unknown commands, with exit code 1 from the process `npm run latchkey` starts', async () => {
    const res = await cli(['frobnicate']);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('unknown command');
    expect(res.stderr).toContain('Usage: latchkey');
    // A real process through src/main.ts run as the entry point (the bin is started by the serve test below).
    const spawned = await run(process.execPath, ['--import', 'tsx', 'src/main.ts', 'frobnicate'], { cwd: root, env: { ...process.env, LOG_LEVEL: 'silent' } }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
    expect(spawned.code).toBe(1);
    expect(spawned.stderr).toBe(res.stderr);
  });

  // The one test that starts the real bin, as an installed `latchkey` runs: it waits for the server to say it serves,
  // for as long as the test may run (a process that compiles TypeScript at start is slow on a slow machine).
  it('serves with its data under the configured SQLite path, migrating at start, run from outside the checkout', { timeout: 60_000 }, async () => {
    // Another working directory, as an installed `latchkey` runs: tsx must still compile the pages with our tsconfig.
    const elsewhere = join(dir, 'fresh');
    mkdirSync(elsewhere, { recursive: true });
    const dataDir = join(elsewhere, 'data');
    const { child, port } = await spawnServe({ cwd: elsewhere, env: { DATABASE_URL: `sqlite:${join(dataDir, 'latchkey.db')}`, LOG_LEVEL: 'info' } });
    try {
      expect(existsSync(join(dataDir, 'latchkey.db'))).toBe(true);
      const res = await fetch(`http://127.0.0.1:${port}/signin`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('Sign in with a passkey');
      const second = await cli(['serve'], { PORT: String(port), DATABASE_URL: `sqlite:${join(dataDir, 'latchkey.db')}`, LATCHKEY_SECRET_KEY_FILE: join(dataDir, 'secret.key') });
      expect(second.code).toBe(2);
      expect(second.stderr).toContain(`PORT: ${port} is already in use`);
    } finally {
      child.kill('SIGTERM');
    }
  });
});
