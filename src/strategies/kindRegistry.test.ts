import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/index.js';
import type { Authenticator, User } from '../db/schema.js';
import type { Store } from '../db/store.js';
import { defaultKinds } from './defaultKinds.js';
import { KindRegistry } from './kindRegistry.js';
import { NO_PASSKEY_COLUMNS } from './authenticatorKind.js';
import { passkeyAssurance } from './passkey/kind.js';

const config = loadConfig({
  LATCHKEY_UPSTREAM_PROVIDERS: 'nhsmail,weak',
  LATCHKEY_UPSTREAM_NHSMAIL_ISSUER: 'https://login.example.nhs.uk',
  LATCHKEY_UPSTREAM_NHSMAIL_CLIENT_ID: 'latchkey',
  LATCHKEY_UPSTREAM_NHSMAIL_NAME: 'NHSmail',
  LATCHKEY_UPSTREAM_NHSMAIL_AAL: '3',
  LATCHKEY_UPSTREAM_WEAK_ISSUER: 'https://weak.example.com',
  LATCHKEY_UPSTREAM_WEAK_CLIENT_ID: 'latchkey',
  LATCHKEY_UPSTREAM_WEAK_NAME: 'Weak',
  LATCHKEY_UPSTREAM_WEAK_AAL: '1',
});
const kinds = new KindRegistry(defaultKinds, config);
/** The same kinds where a password may sign in on its own (LATCHKEY_PASSWORD_SIGNIN=alone). */
const kindsAlone = new KindRegistry(defaultKinds, { ...config, passwordSignIn: 'alone' });

let n = 0;
function row(type: string, fields: Partial<Authenticator> = {}): Authenticator {
  n++;
  return {
    id: `a${n}`,
    user_id: 'u',
    type,
    credential_id: `c${n}`,
    ...NO_PASSKEY_COLUMNS,
    config: '{}',
    name: type,
    created_at: 0,
    last_used_at: null,
    issued_by: null,
    ...fields,
  };
}
const app = (sealedSecret = 'sealed') => row('totp', { config: JSON.stringify({ sealedSecret, lastStep: 1 }) });
const linked = (provider: string) => row('linked-account', { config: JSON.stringify({ provider }) });
const withPassword = { password_hash: 'argon2id-hash' };
const noPassword = { password_hash: null };

describe('assurance: every kind and flag pinned to its AAL and amr (the one function)', () => {
  it.each([
    ['synced passkey', row('passkey', { backup_eligible: 1 }), noPassword, { aal: 2, phishingResistant: true, amr: ['swk', 'user', 'mfa'] }],
    ['device-bound passkey', row('passkey', { backup_eligible: 0 }), noPassword, { aal: 2, phishingResistant: true, amr: ['hwk', 'user', 'mfa'] }],
    ['authenticator app with a password', app(), withPassword, { aal: 2, phishingResistant: false, amr: ['pwd', 'otp', 'mfa'] }],
    ['authenticator app without a password', app(), noPassword, undefined],
    ['linked account at an AAL3 provider', linked('nhsmail'), noPassword, { aal: 3, phishingResistant: false, amr: ['fed'] }],
    ['linked account at an AAL1 provider', linked('weak'), noPassword, { aal: 1, phishingResistant: false, amr: ['fed'] }],
    ['linked account at a provider no longer configured', linked('gone'), noPassword, undefined],
    ['password alone, with LATCHKEY_PASSWORD_SIGNIN=with-app', row('password'), withPassword, undefined],
    ['a kind nobody registered', row('smart-card'), withPassword, undefined],
    ['an app whose stored configuration does not match its schema', row('totp', { config: '{"secret":"in clear"}' }), withPassword, undefined],
    ['configuration that is not JSON', row('linked-account', { config: 'nhsmail' }), withPassword, undefined],
  ])('%s', (_name, authenticator, user, expected) => {
    expect(kinds.assuranceOf(authenticator, user)).toEqual(expected);
  });

  it('a password alone is AAL1 (amr pwd) only with LATCHKEY_PASSWORD_SIGNIN=alone, and only while the person has a password', () => {
    expect(kindsAlone.assuranceOf(row('password'), withPassword)).toEqual({ aal: 1, phishingResistant: false, amr: ['pwd'] });
    expect(kindsAlone.assuranceOf(row('password'), noPassword)).toBeUndefined();
    expect(kindsAlone.signInAal(row('password'), withPassword)).toBe(1);
    expect(() => kinds.signInAal(row('password'), withPassword)).toThrow(/can't sign in on its own/);
    // The app with the same password is unchanged by the setting.
    expect(kindsAlone.assuranceOf(app(), withPassword)).toEqual({ aal: 2, phishingResistant: false, amr: ['pwd', 'otp', 'mfa'] });
  });

  it.each([
    [{ userVerified: true, deviceBound: false, attested: false }, 2, ['swk', 'user', 'mfa']],
    [{ userVerified: true, deviceBound: false, attested: true }, 2, ['swk', 'user', 'mfa']],
    [{ userVerified: true, deviceBound: true, attested: false }, 2, ['hwk', 'user', 'mfa']],
    [{ userVerified: true, deviceBound: true, attested: true }, 3, ['hwk', 'user', 'mfa']],
    [{ userVerified: false, deviceBound: false, attested: false }, 1, ['swk']],
    [{ userVerified: false, deviceBound: true, attested: true }, 1, ['hwk']],
  ])('passkey use %j is AAL%i with amr %j', (use, aal, amr) => {
    expect(passkeyAssurance(use)).toEqual({ aal, phishingResistant: true, amr });
  });
});

describe('reachable level: what step-up can check, and so what a service can get', () => {
  it('counts passkeys and apps with a password; a linked account only for someone with neither', () => {
    expect(kinds.reachableAal(noPassword, [app()])).toBe(0);
    expect(kinds.reachableAal(withPassword, [app()])).toBe(2);
    expect(kinds.reachableAal(noPassword, [linked('nhsmail')])).toBe(3);
    // A passkey is offered for step-up, so the AAL3 linked account is not: the services page and the step-up agree.
    expect(kinds.reachableAal(noPassword, [linked('nhsmail'), row('passkey', { backup_eligible: 1 })])).toBe(2);
    expect(kinds.stepUpCandidates(noPassword, [linked('nhsmail'), app()]).map((a) => a.type)).toEqual(['linked-account']);
    expect(kinds.reachableAal(withPassword, [row('password')])).toBe(0);
  });

  it('counts a password alone only where it may sign in, and only for someone with nothing stronger (a fallback)', () => {
    expect(kindsAlone.reachableAal(withPassword, [row('password')])).toBe(1);
    expect(kindsAlone.stepUpCandidates(withPassword, [row('password'), row('passkey')]).map((a) => a.type)).toEqual(['passkey']);
    expect(kindsAlone.stepUpCandidates(withPassword, [row('password'), app()]).map((a) => a.type)).toEqual(['totp']);
    expect(kindsAlone.reachableAal(withPassword, [row('password'), app()])).toBe(2);
    // Beside a linked account (also a fallback), both are offered.
    expect(kindsAlone.stepUpCandidates(withPassword, [row('password'), linked('weak')]).map((a) => a.type).sort()).toEqual(['linked-account', 'password']);
  });
});

describe('ways in: what "your last way to sign in" counts', () => {
  it('counts only what signs the person in now', () => {
    const passkey = row('passkey');
    const stored = [passkey, row('password'), app(), linked('gone'), row('smart-card')];
    // With-app: the password row, and the app without a password, open nothing.
    expect(kinds.waysIn(noPassword, stored)).toEqual([passkey]);
    expect(kinds.waysIn(withPassword, stored).map((a) => a.type)).toEqual(['passkey', 'totp']);
    expect(kindsAlone.waysIn(withPassword, stored).map((a) => a.type)).toEqual(['passkey', 'password', 'totp']);
    expect(kindsAlone.waysIn(noPassword, [row('password'), linked('weak')]).map((a) => a.type)).toEqual(['linked-account']);
  });
});

describe('removing what signs in with the person\'s password', () => {
  /** A store stand-in for the removal's transaction: what is left, and whether the password was cleared. */
  function removal(left: Authenticator[]) {
    const cleared: (string | null)[] = [];
    const tx = {
      authenticators: { listForUser: async () => left },
      users: { setPasswordHash: async (_id: string, hash: string | null) => void cleared.push(hash) },
    } as unknown as Store;
    return { tx, cleared };
  }
  const user = { id: 'u', password_hash: 'argon2id-hash' } as User;

  it.each([
    ['the last app, nothing else with the password left', app(), [row('passkey')], true],
    ['the last app, a password alone left', app(), [row('password'), row('passkey')], false],
    ['an app, another app left', app(), [app()], false],
    ['the password alone, no app left', row('password'), [row('passkey')], true],
    ['the password alone, an app left', row('password'), [app(), row('passkey')], false],
    ['a passkey', row('passkey'), [row('passkey')], false],
  ])('%s: password cleared %s', async (_name, removed, left, clears) => {
    const { tx, cleared } = removal(left);
    await kindsAlone.removed(tx, user, removed, 1);
    expect(cleared).toEqual(clears ? [null] : []);
  });
});

describe('the registry', () => {
  it('lists every kind\'s self-service choices once, in order', () => {
    expect(kinds.selfServiceChoices().map((c) => c.value)).toEqual(['passkey', 'app', 'linked:nhsmail', 'linked:weak']);
    expect(kinds.selfServiceChoices()[2]!.path('F1')).toBe('/add-authenticator/F1/linked/nhsmail');
  });
  it('refuses a kind registered twice', () => {
    expect(() => new KindRegistry([...defaultKinds, defaultKinds[0]!], config)).toThrow(/registered twice/);
  });
  it('checks a new authenticator\'s configuration against its kind\'s schema before it is written', () => {
    expect(kinds.serializeConfig('linked-account', { provider: 'nhsmail' })).toBe('{"provider":"nhsmail"}');
    expect(() => kinds.serializeConfig('totp', { sealedSecret: 'x' })).toThrow(/schema/);
    expect(() => kinds.serializeConfig('smart-card', {})).toThrow(/unknown/);
  });
  it('labels each kind for lists, and an unknown one by its type', () => {
    expect(kinds.displayOf(linked('nhsmail'), noPassword).label).toBe('NHSmail account');
    expect(kinds.displayOf(app(), withPassword).label).toBe('Authenticator app');
    expect(kinds.displayOf(row('smart-card'), noPassword).label).toBe('smart-card');
  });
});
