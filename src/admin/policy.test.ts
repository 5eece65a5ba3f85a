/**
 * The authenticator policy in the console (issue 13): only an RA Manager sees and saves it; a bad line is named in
 * the error summary and nothing is saved; a saved policy is audited, in force at once, read back by a new app on the
 * same database and printed by doctor. And what the policy and the FIDO metadata say of each passkey: its model,
 * certification, attestation, sync and AAL in the console's Authenticators tab and the person's settings, with the
 * flag when the metadata reports its model compromised. On SQLite and PostgreSQL.
 */
import type { MDSJWTPayload } from '@simplewebauthn/server';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { authenticator, createTestApp, signUp, type TestApp, type TestBrowser } from '../../test/support/app.js';
import { testDatabases } from '../../test/support/databases.js';
import type { Role, User } from '../db/schema.js';
import type { Db } from '../db/connect.js';
import { doctorReport } from '../oidc/doctor.js';
import { DEFAULT_POLICY, readPolicy } from '../webauthn/authenticatorPolicy.js';
import { MetadataCatalogue } from '../webauthn/metadata/catalogue.js';
import { POLICY_SETTING } from '../webauthn/trust.js';

const YUBIKEY = 'cb69481e-8ff7-4039-93ec-0a2729a154a8';
const TITAN = '42b4fb4a-2866-43b2-9bf7-6c6669c2e5d3';

/** A BLOB payload with one model: certified L2, and with `status` reported after that when given. */
function catalogue(status?: 'REVOKED' | 'USER_VERIFICATION_BYPASS'): MetadataCatalogue {
  const statusReports = [{ status: 'FIDO_CERTIFIED_L2', effectiveDate: '2024-01-01' }, ...(status ? [{ status, effectiveDate: '2026-11-01' }] : [])];
  const metadataStatement = {
    aaguid: YUBIKEY,
    description: 'YubiKey 5 Series (test metadata)',
    attestationTypes: ['basic_full'],
    attestationRootCertificates: ['MIIBfjCCASWgAwIBAgIBATAKBggqhkjOPQQDAjAXMRUwEwYDVQQDDAxGSURPIFRlc3QgQ0EwHhcNMjYwMTAxMDAwMDAwWhcNMzYwMTAxMDAwMDAwWjAXMRUwEwYDVQQDDAxGSURPIFRlc3QgQ0E='],
    attachmentHint: ['external', 'wired'],
  };
  const payload = { no: 7, nextUpdate: '2027-01-01', entries: [{ aaguid: YUBIKEY, metadataStatement, statusReports, timeOfLastStatusChange: '2026-11-01' }] };
  return MetadataCatalogue.fromPayload(payload as unknown as MDSJWTPayload);
}

/** The policy form as a browser sends it for the default policy, with `changes` on top. */
function form(changes: Record<string, string> = {}): Record<string, string> {
  return { allowedModels: '', deniedModels: '', minimumCertification: '', syncedPasskeys: 'allowed', aal3MinimumCertification: '', compromised: 'no-aal3', ...changes };
}

const databases = await testDatabases();

describe.each(databases)('the authenticator policy on $name', (target) => {
  describe.skipIf(target.skipReason !== undefined)('', () => {
    afterAll(() => target.cleanup());
    let t: TestApp;
    let db: Db;
    let n = 0;
    afterEach(async () => t?.close());
    const open = async () => {
      db = await target.open();
      t = await createTestApp({}, { db });
      return t.app.latchkey.store;
    };
    const agent = async (roles: Role[]): Promise<{ browser: TestBrowser; user: User }> => {
      const email = `agent-${++n}@example.org`;
      const browser = await signUp(t.app, authenticator(), email, `Agent ${n}`);
      const user = (await t.app.latchkey.store.users.findByEmail(email))!;
      await t.app.latchkey.store.roles.set(user.id, roles, null, Date.now());
      return { browser, user };
    };
    const auditRows = (event: string) => t.db.kysely.selectFrom('audit_events').selectAll().where('event', '=', event).orderBy('id', 'asc').execute();

    it('an RA Manager sees every setting, with how to load metadata when none is, and the console links to it', async () => {
      await open();
      const { browser } = await agent(['ra_manager']);
      const page = await browser.get('/admin/policy');
      expect(page.statusCode).toBe(200);
      for (const id of ['allowedModels', 'deniedModels', 'minimumCertification', 'syncedPasskeys-allowed', 'syncedPasskeys-not-allowed', 'deviceBoundRoles-ra_agent', 'aal3MinimumCertification', 'compromised-no-aal3', 'compromised-refuse']) {
        expect(page.body, id).toContain(`id="${id}"`);
      }
      expect(page.body).toContain('data-no-metadata');
      expect(page.body).toContain('latchkey metadata import FILE');
      expect((await browser.get('/admin')).body).toContain('href="/admin/policy"');

      // With metadata loaded: its models, to copy their AAGUIDs from.
      t.app.latchkey.trust.setMetadata(catalogue());
      const withMetadata = await browser.get('/admin/policy');
      expect(withMetadata.body).not.toContain('data-no-metadata');
      expect(withMetadata.body).toMatch(new RegExp(`data-aaguid="${YUBIKEY}"[\\s\\S]*YubiKey 5 Series \\(test metadata\\)[\\s\\S]*${YUBIKEY}[\\s\\S]*FIDO Certified L2`));
    });

    it('other roles get the console’s refusal, audited, and see no link to it', async () => {
      const store = await open();
      for (const roles of [['ra_agent_advanced'], ['ra_agent'], ['auditor']] as Role[][]) {
        const { browser, user } = await agent(roles);
        expect((await browser.get('/admin')).body, roles[0]).not.toContain('href="/admin/policy"');
        expect((await browser.get('/admin/policy')).statusCode, roles[0]).toBe(403);
        expect((await browser.postForm('/admin/policy', form({ syncedPasskeys: 'not-allowed' }))).statusCode, roles[0]).toBe(403);
        const refusals = (await auditRows('console.refused')).filter((r) => r.actor_user_id === user.id);
        expect(refusals.map((r) => JSON.parse(r.detail).reason), roles[0]).toEqual(['forbidden', 'forbidden']);
      }
      expect(await store.settings.get(POLICY_SETTING)).toBeUndefined();
      expect(t.app.latchkey.trust.policy()).toEqual(DEFAULT_POLICY);
    });

    it('a line that is not an AAGUID, or one in both lists, is named in the error summary at its field; nothing is saved and what was typed is kept', async () => {
      const store = await open();
      const { browser } = await agent(['ra_manager']);
      await browser.get('/admin/policy');
      const typed = form({ allowedModels: `${YUBIKEY}\n\nYubiKey 5 NFC\n${TITAN}`, deniedModels: TITAN.toUpperCase(), syncedPasskeys: 'not-allowed', minimumCertification: 'FIDO_CERTIFIED_L2' });
      const res = await browser.postForm('/admin/policy', typed);
      expect(res.statusCode).toBe(400);
      const summary = /<div class="error-summary"[\s\S]*?<\/div>/.exec(res.body)![0];
      expect(summary).toContain('<a href="#allowedModels">Line 3 of allowed models, “YubiKey 5 NFC”, is not an AAGUID');
      expect(summary).toContain(`<a href="#deniedModels">${TITAN} is in both allowed and denied models`);
      expect(res.body).toContain('id="allowedModels-error"');
      expect(res.body).toMatch(/<textarea[^>]*id="allowedModels"[^>]*>cb69481e-8ff7-4039-93ec-0a2729a154a8\n\nYubiKey 5 NFC\n42b4fb4a/);
      expect(res.body).toMatch(/id="syncedPasskeys-not-allowed"[^>]*checked/);
      expect(res.body).toMatch(/<option value="FIDO_CERTIFIED_L2" selected/);
      expect(await store.settings.get(POLICY_SETTING)).toBeUndefined();
      expect(await auditRows('policy.changed')).toEqual([]);
      expect(t.app.latchkey.trust.policy()).toEqual(DEFAULT_POLICY);

      // A value outside the choices is a message too, not a 400 without a page.
      const odd = await browser.postForm('/admin/policy', form({ compromised: 'ignore', aal3MinimumCertification: 'FIDO_CERTIFIED_L9' }));
      expect(odd.statusCode).toBe(400);
      expect(odd.body).toContain('<a href="#compromised-no-aal3">');
      expect(odd.body).toContain('<a href="#aal3MinimumCertification">');
      expect(await store.settings.get(POLICY_SETTING)).toBeUndefined();
    });

    it('saves the policy: audited with what changed, in force at once, read back by a new app on the same database and by doctor', async () => {
      const store = await open();
      const { browser, user } = await agent(['ra_manager']);
      await browser.get('/admin/policy');
      const fields = {
        ...form({ allowedModels: `${YUBIKEY.toUpperCase()}\r\n${TITAN}\r\n${YUBIKEY}\r\n`, minimumCertification: 'FIDO_CERTIFIED_L1', aal3MinimumCertification: 'FIDO_CERTIFIED_L2', compromised: 'refuse' }),
        deviceBoundRoles: 'ra_agent',
      };
      // Naming models with no metadata loaded would refuse every new passkey: not saved, and the page says why.
      const unconfirmable = await browser.postForm('/admin/policy', fields);
      expect(unconfirmable.statusCode).toBe(400);
      expect(unconfirmable.body).toContain('<a href="#allowedModels">Load the FIDO metadata first');
      expect(unconfirmable.body).toContain('<a href="#minimumCertification">Load the FIDO metadata first');
      expect(await store.settings.get(POLICY_SETTING)).toBeUndefined();
      t.app.latchkey.trust.setMetadata(catalogue());
      const res = await browser.postForm('/admin/policy', fields);
      expect(res.statusCode).toBe(303);
      expect(res.headers.location).toBe('/admin/policy?done=policy-saved');
      const after = await browser.get(res.headers.location as string);
      expect(after.body).toMatch(/<div class="notice success" role="status" id="flash">\s*Authenticator policy saved/);
      expect(after.body).toMatch(/id="deviceBoundRoles-ra_agent"[^>]*checked/);

      const expected = {
        ...DEFAULT_POLICY,
        allowedModels: [YUBIKEY, TITAN],
        minimumCertification: 'FIDO_CERTIFIED_L1',
        deviceBoundRoles: ['ra_agent'],
        aal3MinimumCertification: 'FIDO_CERTIFIED_L2',
        compromised: 'refuse',
      };
      expect(readPolicy(await store.settings.get(POLICY_SETTING))).toEqual(expected);
      expect(t.app.latchkey.trust.policy()).toEqual(expected);

      const [event, ...more] = await auditRows('policy.changed');
      expect(more).toEqual([]);
      expect(event!.actor_user_id).toBe(user.id);
      expect(JSON.parse(event!.detail)).toEqual({
        changes: {
          allowedModels: { added: [YUBIKEY, TITAN], removed: [] },
          minimumCertification: { before: null, after: 'FIDO_CERTIFIED_L1' },
          deviceBoundRoles: { added: ['ra_agent'], removed: [] },
          aal3MinimumCertification: { before: null, after: 'FIDO_CERTIFIED_L2' },
          compromised: { before: 'no-aal3', after: 'refuse' },
        },
      });
      expect((await browser.get('/admin/audit')).body).toContain('Authenticator policy changed');

      // The same form again changes nothing: no second event.
      const again = await browser.postForm('/admin/policy', { ...form({ allowedModels: `${YUBIKEY}\n${TITAN}`, minimumCertification: 'FIDO_CERTIFIED_L1', aal3MinimumCertification: 'FIDO_CERTIFIED_L2', compromised: 'refuse' }), deviceBoundRoles: 'ra_agent' });
      expect(again.headers.location).toBe('/admin/policy?done=policy-unchanged');
      expect(await auditRows('policy.changed')).toHaveLength(1);

      // Another instance (a new app on the same database) starts with it.
      const second = await createTestApp({}, { db });
      try {
        expect(second.app.latchkey.trust.policy()).toEqual(expected);
      } finally {
        await second.app.close();
      }

      const report = await doctorReport(t.config, store, Date.now());
      expect(report.text).toContain('Authenticator policy');
      expect(report.text).toMatch(new RegExp(`allowed models +only ${YUBIKEY} \\(YubiKey 5 Series\\), ${TITAN} \\(`));
      expect(report.text).toMatch(/new passkeys +must be FIDO Certified L1 or higher/);
      expect(report.text).toMatch(/device-bound keys for +RA Agent must register/);
      expect(report.text).toMatch(/AAL3 needs +a device-bound, attested key of a model in the FIDO metadata, FIDO Certified L2 or higher/);
      expect(report.text).toMatch(/compromised models +It can no longer be used to sign in/);
    });

    it('the Authenticators tab and settings show model, certification, attestation, sync and AAL, and flag a model reported compromised', async () => {
      const store = await open();
      const { browser: agentBrowser } = await agent(['ra_agent']);
      const personBrowser = await signUp(t.app, authenticator(), 'person@example.org', 'Person');
      const person = (await store.users.findByEmail('person@example.org'))!;
      await store.authenticators.insert({
        id: 'yubikey-1',
        user_id: person.id,
        type: 'passkey',
        credential_id: 'cred-yubikey-1',
        public_key: 'AQID',
        counter: 0,
        transports: '["usb"]',
        aaguid: YUBIKEY,
        backup_eligible: 0,
        backed_up: 0,
        attestation_format: 'packed',
        config: JSON.stringify({ attestation: { verified: true, model: 'YubiKey 5 Series', certification: 'FIDO_CERTIFIED_L2' } }),
        name: 'Blue YubiKey',
        created_at: Date.now(),
        last_used_at: null,
      });
      const tab = async () => {
        const body = (await agentBrowser.get(`/admin/users/${person.id}/authenticators`)).body;
        return /<tr data-authenticator-id="yubikey-1"[\s\S]*?<\/tr>/.exec(body)![0];
      };
      const settings = async () => {
        const body = (await personBrowser.get('/settings')).body;
        return /<tr data-passkey-id="yubikey-1"[\s\S]*?<\/tr>/.exec(body)![0];
      };

      // Without metadata nothing can be trusted about the model: no AAL3.
      let row = await tab();
      expect(row).toContain('data-aal="2"');
      expect(row).not.toContain('data-compromised');

      t.app.latchkey.trust.setMetadata(catalogue());
      row = await tab();
      expect(row).toContain('<span data-model="true">YubiKey 5 Series</span>');
      expect(row).toContain('<li data-certification="true">FIDO Certified L2</li>');
      expect(row).toContain('<li data-attestation="true">Attestation: Verified</li>');
      expect(row).toContain('<li data-sync="true">Device-bound</li>');
      expect(row).toMatch(/data-aal="3"[^>]*>\s*AAL3/);
      expect(row).not.toContain('data-compromised');
      let mine = await settings();
      expect(mine).toContain('YubiKey 5 Series · FIDO Certified L2 · stays on this security key · gives the highest level of sign-in (AAL3)');
      expect(mine).not.toContain('data-compromised');

      // The person's own synced passkey: no attestation, synced, AAL2, and nothing said about AAL3.
      const [own] = (await store.authenticators.listForUser(person.id)).filter((a) => a.id !== 'yubikey-1');
      const ownRow = /<tr data-authenticator-id="[^"]+"[\s\S]*?<\/tr>/.exec((await agentBrowser.get(`/admin/users/${person.id}/authenticators`)).body.replace(/<tr data-authenticator-id="yubikey-1"[\s\S]*?<\/tr>/, ''))![0];
      expect(ownRow).toContain('Attestation: None');
      expect(ownRow).toContain(own!.backup_eligible ? 'Synced' : 'Device-bound');
      expect(ownRow).toContain('data-aal="2"');
      const ownWords = /<tr data-passkey-id="(?!yubikey-1)[\s\S]*?<\/tr>/.exec((await personBrowser.get('/settings')).body)![0];
      expect(ownWords).toContain('data-passkey-words');
      expect(ownWords).not.toContain('AAL');

      // The FIDO Alliance revokes the model: flagged, and no longer AAL3.
      t.app.latchkey.trust.setMetadata(catalogue('REVOKED'));
      row = await tab();
      expect(row).toContain('data-compromised="REVOKED"');
      expect(row).toContain('Security problem reported by the FIDO Alliance:</strong> its certification was revoked. The policy stops it counting for AAL3.');
      expect(row).toContain('data-aal="2"');
      mine = await settings();
      expect(mine).toMatch(/data-passkey-words="true">YubiKey 5 Series · FIDO Certified L2 · stays on this security key<\/span>/);
      expect(mine).toContain(
        'The FIDO Alliance has reported a security problem with this model: its certification was revoked. It no longer gives the highest level of sign-in (AAL3). Contact your registration authority to get a replacement.',
      );

      // When the policy says a compromised model can't sign in, both say so.
      t.app.latchkey.trust.setPolicy({ ...DEFAULT_POLICY, compromised: 'refuse' });
      row = await tab();
      expect(row).toContain('The policy stops it signing in.');
      expect(row).toMatch(/<td data-label="Assurance">\s*Can’t sign in/);
      expect(await settings()).toContain('You can no longer use it to sign in. Contact your registration authority');
    });
  });
});
