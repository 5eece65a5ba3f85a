/** The words activity lists show for a record: a check that it was the person says how it was made. */
import { describe, expect, it } from 'vitest';
import { auditEventLabel, auditEventLabels } from './audit.js';

const label = (event: string, detail: unknown) => auditEventLabel(auditEventLabels, { event, detail: typeof detail === 'string' ? detail : JSON.stringify(detail) });

describe('auditEventLabel', () => {
  it.each([
    [{}, 'Confirmed it was you with a passkey', 'Failed passkey check'],
    [{ origin: 'https://id.example.org' }, 'Confirmed it was you with a passkey', 'Failed passkey check'],
    [{ method: 'password' }, 'Confirmed it was you with your password', 'Failed password check'],
    [{ method: 'password+totp' }, 'Confirmed it was you with your password and authenticator app', 'Failed password and authenticator app check'],
    [{ method: 'linked-account', provider: 'nhsnet' }, 'Confirmed it was you with your work account', 'Failed work account check'],
  ])('a check with detail %j', (detail, success, failure) => {
    expect(label('reauth', detail)).toBe(success);
    expect(label('reauth.failed', detail)).toBe(failure);
  });

  it('falls back to the event\'s words for a method it does not know or a detail it cannot read, and leaves other events alone', () => {
    expect(label('reauth', { method: 'smart-card' })).toBe('Confirmed it was you');
    expect(label('reauth', 'not json')).toBe('Confirmed it was you');
    expect(label('reauth', { method: 'toString' })).toBe('Confirmed it was you');
    expect(label('signin', { method: 'password' })).toBe('Signed in');
    expect(label('something.new', {})).toBe('something.new');
  });
});
