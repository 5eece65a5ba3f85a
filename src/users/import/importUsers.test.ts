import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { testDatabases } from '../../../test/support/databases.js';
import { startSmtpSink, type SmtpSink } from '../../../test/support/smtpSink.js';
import { testConfig } from '../../../test/support/app.js';
import { Store } from '../../db/store.js';
import type { Db } from '../../db/connect.js';
import { ensureDefaultTemplate } from '../../admin/emailTemplates.js';
import { createMailer } from '../../mail/createMailer.js';
import { hashNationalId } from '../nationalId.js';
import { ImportFileError, importUsers, type ImportUsersOptions } from './importUsers.js';
import { readUserCsv } from './readUserCsv.js';
import { nationalInsuranceNumber } from '../nationalId.js';

const databases = await testDatabases();
const SECRET = 'test-secret';
const config = testConfig();
const cli = { userId: null, ip: null, userAgent: null };

function options(extra: Partial<ImportUsersOptions> = {}): ImportUsersOptions {
  return { fileName: 'staff.csv', canGrantRoles: true, actor: cli, source: 'test', ...extra };
}

describe('reading the CSV file', () => {
  it('accepts common header spellings in any case, and knows where each record starts', () => {
    const csv = readUserCsv('\ufeffFull Name,E-mail Address,NINO,Role\r\n"Smith,\nJo",jo@example.org,,\r\n\r\n,,,\r\nAl,al@example.org,QQ123456C,auditor\r\n', nationalInsuranceNumber);
    expect(csv.headers).toEqual({ name: 'Full Name', email: 'E-mail Address', nationalId: 'NINO', roles: 'Role' });
    expect(csv.rows).toEqual([
      { line: 2, name: 'Smith,\nJo', email: 'jo@example.org', nationalId: '', roles: '' },
      { line: 6, name: 'Al', email: 'al@example.org', nationalId: 'QQ123456C', roles: 'auditor' },
    ]);
    expect(readUserCsv('national_insurance_number,Email,name\nQQ123456C,a@b.org,A\n', nationalInsuranceNumber).rows[0]).toMatchObject({ name: 'A', nationalId: 'QQ123456C' });
  });

  it('refuses the file as a whole for a missing, unknown or doubled column, an empty file or a quote never closed', () => {
    const problem = (text: string) => {
      try {
        readUserCsv(text, nationalInsuranceNumber);
      } catch (err) {
        expect(err).toBeInstanceOf(ImportFileError);
        return (err as Error).message;
      }
      throw new Error('not refused');
    };
    expect(problem('name,phone\nA,1\n')).toContain('do not recognise: “phone”');
    expect(problem('name\nA\n')).toContain('must have an email column');
    expect(problem('nino,roles\n')).toContain('must have a name column and an email column');
    expect(problem('name,email,Email Address\n')).toContain('two email columns');
    expect(problem('')).toContain('The file is empty');
    expect(problem('name,email\n"A,a@b.org\n')).toMatch(/not a CSV file we can read \(line \d\)/);
  });
});

describe.each(databases)('bulk import on $name', (target) => {
  describe.skipIf(target.skipReason !== undefined)('', () => {
    let db: Db;
    let store: Store;
    let sink: SmtpSink;
    const now = () => Date.now();
    const deps = () => ({ store, config, secret: SECRET, now });

    beforeAll(async () => {
      db = await target.open();
      await db.migrate();
      store = new Store(db.kysely);
      await ensureDefaultTemplate(store, Date.now());
      sink = await startSmtpSink();
    });
    afterAll(async () => {
      await sink.close();
      await target.cleanup();
    });

    it('reports each imported person and role to the webhook endpoints that chose those events, in the import’s transactions', async () => {
      const t = Date.now();
      await store.webhooks.insertEndpoint({ id: 'ep-users', url: 'https://hr.example.org/hooks', description: '', events: '["user.created","role.changed"]', secret: 'sealed', created_by: null, created_at: t });
      await store.webhooks.insertEndpoint({ id: 'ep-other', url: 'https://hr.example.org/other', description: '', events: '["authenticator.added"]', secret: 'sealed', created_by: null, created_at: t });
      const done = await importUsers(deps(), 'name,email,roles\nHook One,hook1@example.org,auditor\nHook Two,hook2@example.org,\n', options());
      expect(done).toMatchObject({ written: true, created: 2 });
      const deliveries = await store.kysely.selectFrom('webhook_deliveries').selectAll().orderBy('event_type').execute();
      expect(deliveries.map((d) => [d.endpoint_id, d.event_type])).toEqual([
        ['ep-users', 'role.changed'],
        ['ep-users', 'user.created'],
        ['ep-users', 'user.created'],
      ]);
      const created = deliveries.filter((d) => d.event_type === 'user.created').map((d) => JSON.parse(d.payload).data.user.email).sort();
      expect(created).toEqual(['hook1@example.org', 'hook2@example.org']);
      await store.kysely.deleteFrom('webhook_endpoints').execute();
    });

    it('refuses lines with their line numbers and writes nothing, unless told to go ahead with the valid ones', async () => {
      await store.users.insert({ id: 'existing-1', email: 'Taken@Example.org', email_normalized: '', display_name: 'Taken', status: 'enrolled', created_at: 1, updated_at: 1 });
      const file = [
        'name,email,national insurance number,roles',
        'Ada Lovelace,ada@example.org,qq 12 34 56 c,ra_agent; auditor', // 2: created, with roles
        ',no-name@example.org,,', // 3: refused: name
        'Bad Email,not-an-email,,', // 4: refused: email
        'Taken Again,taken@example.org,,', // 5: skipped: exists (case-insensitively)
        'Ada Twice,ADA@example.org,,', // 6: refused: duplicate of line 2
        'Bad Nino,nino@example.org,AB123,', // 7: refused: identifier
        'Bad Role,role@example.org,,superuser', // 8: refused: role
        'Grace Hopper,grace@example.org,,', // 9: created
      ].join('\n');
      const before = await store.users.count();
      const refused = await importUsers(deps(), file, options());
      expect(refused.written).toBe(false);
      expect(await store.users.count()).toBe(before);
      expect(refused.refusedLines).toBe(5);
      expect(refused.refused).toEqual([
        { line: 3, field: 'name', message: 'Enter the person’s full name' },
        { line: 4, field: 'email', message: 'Enter an email address in the correct format, like name@example.com' },
        { line: 6, field: 'email', message: 'This email address is also on line 2. Each person can be in the file once' },
        { line: 7, field: 'national insurance number', message: 'Enter a National Insurance number in the correct format, like QQ 12 34 56 C' },
        { line: 8, field: 'roles', message: '“superuser” is not a role. Use ra_manager, ra_agent_advanced, ra_agent, auditor, separated by semicolons' },
      ]);
      expect(refused.skipped).toEqual([{ line: 5, email: 'taken@example.org', reason: 'A user with this email address already exists' }]);
      expect(refused.created).toBe(2);
      const [record] = await store.audit.listByEvent('users.imported', 1);
      expect(record).toMatchObject({ outcome: 'refused' });
      expect(JSON.parse(record!.detail)).toMatchObject({ fileName: 'staff.csv', rows: 8, created: 0, refused: 5, skipped: 1 });

      const dry = await importUsers(deps(), file, options({ dryRun: true, skipInvalid: true }));
      expect(dry.written).toBe(false);
      expect(await store.users.count()).toBe(before);

      const done = await importUsers(deps(), file, options({ skipInvalid: true }));
      expect(done).toMatchObject({ written: true, created: 2, refusedLines: 5 });
      const ada = (await store.users.findByEmail('ada@example.org'))!;
      expect(ada).toMatchObject({ display_name: 'Ada Lovelace', status: 'pending', national_id_hash: hashNationalId(SECRET, 'QQ123456C') });
      expect(await store.roles.listForUser(ada.id)).toEqual(['auditor', 'ra_agent']);
      const grace = (await store.users.findByEmail('grace@example.org'))!;
      expect(grace.national_id_hash).toBeNull();
      expect(await store.roles.listForUser(grace.id)).toEqual([]);
      const created = await store.audit.listForSubject(ada.id);
      expect(created.map((e) => e.event).sort()).toEqual(['roles.changed', 'user.created']);
      expect(JSON.parse(created.find((e) => e.event === 'user.created')!.detail)).toEqual({ nationalId: true, via: 'import', importId: done.importId });

      // Imported again: everyone is skipped as already there, nothing refused twice over.
      const again = await importUsers(deps(), 'name,email\nAda Lovelace,ada@example.org\nGrace Hopper,grace@example.org\n', options());
      expect(again).toMatchObject({ written: true, created: 0 });
      expect(again.skipped.map((s) => s.line)).toEqual([2, 3]);
    });

    it('refuses roles to an importer who may not grant them', async () => {
      const report = await importUsers(deps(), 'name,email,roles\nRole Less,roleless@example.org,ra_manager\nPlain,plain@example.org,\n', options({ canGrantRoles: false }));
      expect(report.refused).toEqual([{ line: 2, field: 'roles', message: expect.stringContaining('does not allow granting roles') }]);
      expect(report.written).toBe(false);
    });

    it('turns an address taken between the check and the write into "skipped", never a failed batch', async () => {
      const { planUserImport, writeUserImport } = await import('./importUsers.js');
      const csv = readUserCsv('name,email\nRacer One,racer1@example.org\nRacer Two,racer2@example.org\n', nationalInsuranceNumber);
      const plan = await planUserImport(store, csv, { secret: SECRET, config, canGrantRoles: true });
      expect(plan.toCreate).toHaveLength(2);
      await store.users.insert({ id: 'racer-won', email: 'RACER2@example.org', email_normalized: '', display_name: 'Won', status: 'pending', created_at: 1, updated_at: 1 });
      const written = await writeUserImport(store, plan.toCreate, { now, actor: cli, importId: 'race' });
      expect(written.created.map((c) => c.user.email)).toEqual(['racer1@example.org']);
      expect(written.skipped).toEqual([{ line: 3, email: 'racer2@example.org', reason: 'A user with this email address already exists' }]);
      expect((await store.users.findByEmail('racer2@example.org'))!.id).toBe('racer-won');
      expect(await store.audit.listForSubject('racer-won')).toEqual([]);
    });

    it('emails each new user an enrolment link; a mail that fails is reported for its line and the user stays', async () => {
      const template = (await store.emailTemplates.findDefault())!;
      const mailer = createMailer({ ...config, smtpUrl: sink.url });
      const failing = {
        kind: 'smtp' as const,
        close: () => mailer.close(),
        send: async (mail: { to: string; subject: string; text: string }) => {
          if (mail.to === 'bounce@example.org') throw new Error('The email could not be sent');
          return mailer.send(mail);
        },
      };
      try {
        const report = await importUsers({ ...deps(), mailer: failing }, 'name,email\nMail Me,mailme@example.org\nBounce,bounce@example.org\n', {
          ...options(),
          enrolmentEmail: { template, lifetimeSeconds: 3600 },
        });
        expect(report).toMatchObject({ created: 2, mailed: 1, mailFailures: [{ line: 3, email: 'bounce@example.org', message: 'The email could not be sent' }] });
        const mail = await sink.waitFor((m) => m.to.includes('mailme@example.org'));
        expect(mail.text).toMatch(/\/enrol\/[A-Za-z0-9_-]{43}/);
        const bounced = (await store.users.findByEmail('bounce@example.org'))!;
        expect(bounced.status).toBe('pending');
        const flows = await store.flows.listForUser(bounced.id, ['invite'], 5);
        expect(flows.map((f) => f.state)).toEqual(['revoked']);
      } finally {
        await mailer.close();
      }
    });

    // How fast is measured by npm run bench:import (BENCHMARKS.md), never asserted here.
    it('imports 100,000 rows in batches, with progress', async () => {
      const lines = ['name,email,nino'];
      for (let i = 0; i < 100_000; i++) lines.push(`Person ${i},person.${i}@bulk.example,${i % 10 === 0 ? `QQ${String(i % 1_000_000).padStart(6, '0')}C` : ''}`);
      const progress: number[] = [];
      const report = await importUsers(deps(), lines.join('\n'), options({ onProgress: (p) => progress.push(p.done) }));
      expect(report).toMatchObject({ written: true, created: 100_000, refusedLines: 0, skipped: [] });
      const counted = await sql<{ n: number | string }>`select count(*) as n from users where email_normalized like ${'%@bulk.example'}`.execute(db.kysely);
      expect(Number(counted.rows[0]!.n)).toBe(100_000);
      const audited = await sql<{ n: number | string }>`select count(*) as n from audit_events where event = 'user.created' and detail like ${`%${report.importId}%`}`.execute(db.kysely);
      expect(Number(audited.rows[0]!.n)).toBe(100_000);
      expect(progress.length).toBe(200);
      expect(progress.at(-1)).toBe(100_000);
    }, 120_000);
  });
});
