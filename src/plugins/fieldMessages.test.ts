/**
 * Messages about fields the schema refused are written for people (issue 11,
 * item 14): they name a field as its page does ("National Insurance number",
 * or the configured label), say what was wrong ("must be 200 characters or
 * fewer"), and never show the name a field has in the code (`nationalId`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticator, createTestApp, signUp, TestBrowser, type TestApp } from '../../test/support/app.js';

/** Names fields have in the code that are not words people would read in a message. */
const CODE_NAMES = /\b(nationalId|displayName|confirmPassword|_csrf|captcha|redirectUris|logoutUris|clientType|firstParty|requiredProperties|instancePath)\b/;

/** The messages a page shows in its error summary and at its fields. */
function messagesOn(html: string): string[] {
  const summary = [...html.matchAll(/<a href="#[^"]*">([^<]*)<\/a>/g)].map((m) => m[1]!);
  const body = [...html.matchAll(/data-error-message>([^<]*)</g)].map((m) => m[1]!);
  return [...summary, ...body].filter(Boolean);
}

async function selfServiceDetails(b: TestBrowser): Promise<string> {
  await b.get('/add-authenticator');
  const start = await b.postForm('/add-authenticator', {});
  return start.headers.location as string;
}

describe('messages about refused fields', () => {
  let t: TestApp;
  let signedIn: TestBrowser;
  beforeAll(async () => {
    t = await createTestApp();
    signedIn = await signUp(t.app, authenticator());
  });
  afterAll(async () => t.close());

  it('names a 5,000-character National Insurance number by its label and says how long it may be', async () => {
    const b = new TestBrowser(t.app);
    const details = await selfServiceDetails(b);
    const page = await b.postForm(details, { email: 'ada@example.com', nationalId: 'Q'.repeat(5000) });
    expect(page.statusCode).toBe(400);
    expect(messagesOn(page.body)).toContain('National Insurance number must be 200 characters or fewer');
    expect(page.body).not.toMatch(/>[^<]*nationalId[^<]*</);

    const json = await b.postJson(details, { email: 'ada@example.com', nationalId: 'Q'.repeat(5000) });
    expect(json.json().error.fields).toEqual([{ field: 'nationalId', message: 'National Insurance number must be 200 characters or fewer' }]);
  });

  it('uses the configured name of the national identifier', async () => {
    const other = await createTestApp({ LATCHKEY_NATIONAL_ID_LABEL: 'Staff number' });
    try {
      const b = new TestBrowser(other.app);
      const details = await selfServiceDetails(b);
      const json = await b.postJson(details, { nationalId: 'Q'.repeat(5000) });
      expect(json.json().error.fields).toEqual([{ field: 'nationalId', message: 'Staff number must be 200 characters or fewer' }]);
    } finally {
      await other.close();
    }
  });

  it('writes every over-long field of the forms people use as a sentence about that field', async () => {
    const long = 'x'.repeat(5000);
    const person = new TestBrowser(t.app);
    const details = await selfServiceDetails(person);
    const cases: [TestBrowser, string, Record<string, string>, string][] = [
      [person, details, { email: long }, 'Email address must be 2000 characters or fewer'],
      [person, details, { captcha: long }, 'The check that you are a person must be 4000 characters or fewer'],
      [person, '/signin/password', { email: long }, 'Email address must be 2000 characters or fewer'],
      [person, '/signin/password', { password: long }, 'Password must be 1000 characters or fewer'],
      [person, '/enrol', { code: long }, 'Code must be 200 characters or fewer'],
      [signedIn, '/reauth/password', { password: long }, 'Password must be 1000 characters or fewer'],
      [signedIn, '/settings/password', { confirmPassword: long }, 'Confirm password must be 1000 characters or fewer'],
    ];
    for (const [browser, path, fields, expected] of cases) {
      const res = await browser.postForm(path, fields);
      const messages = messagesOn(res.body);
      expect(res.statusCode, `${path} ${Object.keys(fields)}`).toBe(400);
      expect(messages, `${path} ${Object.keys(fields)}`).toContain(expected);
      for (const m of messages) expect(m, path).not.toMatch(CODE_NAMES);
    }
    // JSON callers get the same words, with the field's name for their code.
    const signup = await person.postJson('/signup/options', { displayName: long, email: 'ada@example.org' });
    expect(signup.json().error.fields).toEqual([{ field: 'displayName', message: 'Your name must be 100 characters or fewer' }]);
  });

  it('never shows a field the schema does not know by its name in the code', async () => {
    const b = new TestBrowser(t.app);
    const details = await selfServiceDetails(b);
    const res = await b.postJson(details, { somethingInternal: 'x', nationalId: ['not', 'text'] });
    for (const f of res.json().error.fields as { field: string; message: string }[]) {
      expect(f.message).not.toContain(f.field);
      expect(f.message).not.toMatch(CODE_NAMES);
    }
    // Parts of the address people never type get a sentence about the address.
    const page = await b.get('/add-authenticator/not*a*flow/details');
    expect(page.statusCode).toBe(400);
    expect(messagesOn(page.body).join(' ')).toContain('The address of this page is not right');
  });
});
