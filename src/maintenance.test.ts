import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { authenticator, createTestApp, signUp, TestBrowser, type TestApp } from '../test/support/app.js';
import { createUser } from './users/createUser.js';
import { issueInvite } from './flows/enrolment/invites.js';
import { pruneExpired } from './maintenance.js';

describe('pruneExpired', () => {
  let t: TestApp;
  let clock: number;
  beforeEach(async () => {
    clock = Date.UTC(2026, 10, 22, 9);
    // Ceremonies in the database, as on PostgreSQL; the in-process store drops expired ones itself (challengeStore.test.ts).
    t = await createTestApp({ LATCHKEY_CHALLENGE_STORE: 'database' }, { now: () => clock });
  });
  afterEach(async () => t.close());

  it('removes ended sessions and ceremonies, and keeps expired invites answering for 30 days', async () => {
    const { store } = t.app.latchkey;
    const browser = await signUp(t.app, authenticator());
    await browser.postJson('/signin/options', { mode: 'discoverable' });
    const user = await createUser(store, { email: 'mary@example.com', displayName: 'Mary' }, clock);
    const { url } = await issueInvite(store, t.config, user, clock);
    const path = new URL(url).pathname;

    expect(await pruneExpired(store, t.config, clock)).toEqual({ sessions: 0, flows: 0, challenges: 0, signinFailures: 0, rateCounters: 0, webhookDeliveries: 0 });
    clock += 4 * 24 * 3600 * 1000; // sessions idle, ceremonies and the invite expired
    const pruned = await pruneExpired(store, t.config, clock);
    expect(pruned.sessions).toBe(1);
    // The sign-in never answered; the sign-up's challenge went when it was used. The invite stays for now.
    expect(pruned.challenges).toBe(1);
    expect(pruned.flows).toBe(0);
    expect((await new TestBrowser(t.app).get(path)).statusCode).toBe(410);
    clock += 31 * 24 * 3600 * 1000;
    expect((await pruneExpired(store, t.config, clock)).flows).toBe(1);
    expect((await new TestBrowser(t.app).get(path)).statusCode).toBe(404);
  });

  it('forgets bulk-import checks nobody started after a day, and keeps started imports', async () => {
    const { store } = t.app.latchkey;
    const { checkImportFile } = await import('./users/import/importJobs.js');
    const deps = { store, config: t.config, secret: t.app.latchkey.secret, now: () => clock };
    const check = (email: string) => checkImportFile(deps, { fileName: 'a.csv', text: `name,email\nA,${email}\n` }, { userId: 'agent', canGrantRoles: false }, { sendEmail: false });
    const waiting = await check('waiting@example.org');
    const started = await check('started@example.org');
    await store.userImports.start(started.id, clock);
    clock += 23 * 3600 * 1000;
    await pruneExpired(store, t.config, clock);
    expect(await store.userImports.findById(waiting.id)).toBeDefined();
    clock += 2 * 3600 * 1000;
    await pruneExpired(store, t.config, clock);
    expect(await store.userImports.findById(waiting.id)).toBeUndefined();
    expect(await store.userImports.findById(started.id)).toBeDefined();
  });

  it('forgets rate counters a day after their window started, and keeps the ones still counting', async () => {
    const { store } = t.app.latchkey;
    const HOUR = 3600 * 1000;
    await store.rateCounters.hit('self-service-ip:192.0.2.1', HOUR, clock);
    clock += 23 * HOUR;
    await store.rateCounters.hit('self-service-ip:192.0.2.2', HOUR, clock);
    expect((await pruneExpired(store, t.config, clock)).rateCounters).toBe(0);
    clock += 2 * HOUR;
    expect((await pruneExpired(store, t.config, clock)).rateCounters).toBe(1);
    const left = await store.kysely.selectFrom('rate_counters').select('key').execute();
    expect(left.map((r) => r.key)).toEqual(['self-service-ip:192.0.2.2']);
  });
});
