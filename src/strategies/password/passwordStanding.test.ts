/**
 * passwordStanding: where a person stands with their one password, for settings' offer, the set and change pages and
 * "Confirm it is you" — under each LATCHKEY_PASSWORD_SIGNIN setting, from what signs them in (the kinds).
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/index.js';
import type { Authenticator } from '../../db/schema.js';
import { NO_PASSKEY_COLUMNS } from '../authenticatorKind.js';
import { defaultKinds } from '../defaultKinds.js';
import { KindRegistry } from '../kindRegistry.js';
import { passwordStanding } from './passwordStanding.js';

const withApp = loadConfig({});
const alone = { ...withApp, passwordSignIn: 'alone' as const };
const registries = { 'with-app': new KindRegistry(defaultKinds, withApp), alone: new KindRegistry(defaultKinds, alone) };

function row(type: string, config = '{}'): Authenticator {
  return { id: type, user_id: 'u', type, credential_id: type, ...NO_PASSKEY_COLUMNS, config, name: type, created_at: 0, last_used_at: null, issued_by: null };
}
const passkey = row('passkey');
const password = row('password');
const app = row('totp', JSON.stringify({ sealedSecret: 'sealed', lastStep: 1 }));
const hash = { password_hash: 'argon2id-hash' };
const none = { password_hash: null };

describe('passwordStanding', () => {
  it.each([
    ['alone', 'passkeys only', none, [passkey], { setAlone: false, signsInAlone: false, withApp: false, offer: 'new', reauth: undefined }],
    ['alone', 'a password with an app', hash, [passkey, app], { setAlone: false, signsInAlone: false, withApp: true, offer: 'app', reauth: 'with-app' }],
    ['alone', 'a password set to sign in alone, beside a passkey', hash, [passkey, password], { setAlone: true, signsInAlone: true, withApp: false, offer: undefined, reauth: undefined }],
    ['alone', 'a password alone and nothing else', hash, [password], { setAlone: true, signsInAlone: true, withApp: false, offer: undefined, reauth: 'alone' }],
    ['alone', 'a password alone and an app', hash, [password, app], { setAlone: true, signsInAlone: true, withApp: true, offer: undefined, reauth: 'with-app' }],
    ['with-app', 'a password row left from "alone", and an app', hash, [password, app], { setAlone: true, signsInAlone: false, withApp: true, offer: undefined, reauth: 'with-app' }],
    ['with-app', 'a password row left from "alone", alone', hash, [password], { setAlone: true, signsInAlone: false, withApp: false, offer: undefined, reauth: undefined }],
    ['with-app', 'an app without a password', none, [passkey, app], { setAlone: false, signsInAlone: false, withApp: false, offer: undefined, reauth: undefined }],
  ] as const)('%s, %s', (setting, _name, user, authenticators, expected) => {
    expect(passwordStanding(registries[setting], setting === 'alone' ? alone : withApp, user, [...authenticators])).toEqual(expected);
  });
});
