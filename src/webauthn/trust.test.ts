import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../test/support/app.js';
import { doctorReport } from '../oidc/doctor.js';
import { DEFAULT_POLICY } from './authenticatorPolicy.js';
import { POLICY_SETTING, Trust } from './trust.js';

describe('Trust.reload', () => {
  let t: TestApp;
  beforeEach(async () => {
    t = await createTestApp();
  });
  afterEach(() => t.close());

  it('a stored policy it cannot read keeps the last one read in force (never the permissive default), and doctor warns', async () => {
    const { store } = t.app.latchkey;
    const strict = { ...DEFAULT_POLICY, syncedPasskeys: 'not-allowed' as const, deviceBoundRoles: ['ra_agent' as const] };
    await store.settings.set(POLICY_SETTING, JSON.stringify(strict));
    const trust = new Trust();
    await trust.reload(store);
    expect(trust.policy()).toEqual(strict);
    expect(trust.policyProblem).toBeUndefined();

    await store.settings.set(POLICY_SETTING, JSON.stringify({ ...strict, deviceBoundRoles: ['ra_superhero'] }));
    await trust.reload(store);
    expect(trust.policy()).toEqual(strict);
    expect(trust.policyProblem).toMatch(/could not be read: the last policy read is in force/);
    const report = await doctorReport(t.app.latchkey.config, store, Date.now());
    expect(report.warnings.some((w) => w.includes('The stored authenticator policy could not be read'))).toBe(true);
  });
});
