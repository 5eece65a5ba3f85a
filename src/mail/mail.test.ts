import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTransport } from 'nodemailer';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestApp, testConfig, type TestApp } from '../../test/support/app.js';
import { startSmtpSink, type SmtpSink } from '../../test/support/smtpSink.js';
import { AppError } from '../errors.js';
import { createMailer, readOutbox } from './createMailer.js';
import type { Mailer } from './mailer.js';

/** Longer than a quoted-printable line (76 characters), so the encoder must wrap it. */
const LONG_LINK = `http://localhost:3000/enrol/${'k'.repeat(43)}?placement=another-device&return=%2Fsettings%3Ftab%3Dpasskeys`;

let outboxDir: string;
beforeEach(async () => {
  outboxDir = await mkdtemp(join(tmpdir(), 'latchkey-outbox-'));
});
afterEach(async () => {
  await rm(outboxDir, { recursive: true, force: true });
});

describe('SMTP mailer', () => {
  let sink: SmtpSink;
  let mailer: Mailer;
  beforeAll(async () => {
    sink = await startSmtpSink();
  });
  afterAll(async () => sink.close());
  beforeEach(() => {
    sink.clear();
    mailer = createMailer(testConfig({ LATCHKEY_SMTP_URL: sink.url, LATCHKEY_MAIL_FROM: 'Latchkey <no-reply@example.org>' }));
  });
  afterEach(async () => mailer.close());

  it('delivers subject, recipient, sender and the exact text, long link included', async () => {
    const text = `Hello Ada,\n\nSet up your passkey with this link:\n${LONG_LINK}\n\nThe link works once and expires in 72 hours.`;
    expect(mailer.kind).toBe('smtp');
    await mailer.send({ to: 'ada@example.com', subject: 'Set up your passkey', text });

    const mail = await sink.waitFor((m) => m.to.includes('ada@example.com'));
    expect(mail.subject).toBe('Set up your passkey');
    expect(mail.from).toBe('Latchkey <no-reply@example.org>');
    expect(mail.to).toEqual(['ada@example.com']);
    expect(mail.text).toBe(text);
    // The link really was wrapped on the wire: the decoder, not luck, put it back together.
    expect(mail.headers['content-transfer-encoding']).toBe('quoted-printable');
    expect(mail.raw).not.toContain(LONG_LINK);
  });

  it('keeps a UTF-8 subject and body intact', async () => {
    const subject = 'Zoë’s passkey — link';
    const text = `Bonjour Zoë — voilà ton lien ✓\n${LONG_LINK}`;
    await mailer.send({ to: 'zoe@example.com', subject, text });

    const mail = await sink.waitFor((m) => m.to.includes('zoe@example.com'));
    expect(mail.subject).toBe(subject);
    expect(mail.text).toBe(text);
    expect(mail.raw).not.toContain(subject); // it travelled as an RFC 2047 encoded-word
  });

  it('answers mail_unavailable, not a raw socket error, when the server refuses the connection', async () => {
    const closed = await startSmtpSink();
    await closed.close();
    const unreachable = createMailer(testConfig({ LATCHKEY_SMTP_URL: closed.url }));
    try {
      const failure = await unreachable.send({ to: 'ada@example.com', subject: 'Hi', text: 'secret link' }).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(AppError);
      expect(failure).toMatchObject({ code: 'mail_unavailable', status: 503 });
      // What reaches the log names the failure, not the message.
      const logged = String((failure as AppError).cause);
      expect(logged).toContain('ECONNREFUSED');
      expect(logged).not.toContain('secret link');
    } finally {
      await unreachable.close();
    }
  });

  it('the test sink takes the text/plain part of a multipart message', async () => {
    const transport = createTransport({ url: sink.url });
    await transport.sendMail({
      from: 'a@example.org',
      to: 'b@example.org',
      subject: 'Multipart',
      text: 'Plain ✓',
      html: '<p>HTML</p>',
      attachments: [{ filename: 'note.txt', content: 'attached' }],
    });
    transport.close();
    const mail = await sink.waitFor((m) => m.subject === 'Multipart');
    expect(mail.headers['content-type']).toMatch(/^multipart\/mixed/);
    expect(mail.text).toBe('Plain ✓');
  });
});

describe('without SMTP', () => {
  it('the development outbox keeps each message as a file, listed newest first', async () => {
    const mailer = createMailer(testConfig({ LATCHKEY_OUTBOX_DIR: join(outboxDir, 'created-on-first-send') }));
    expect(mailer.kind).toBe('outbox');
    for (const n of [1, 2, 3]) await mailer.send({ to: `user${n}@example.com`, subject: `Message ${n}`, text: `Body ${n}` });

    const dir = join(outboxDir, 'created-on-first-send');
    await writeFile(join(dir, '9999999999999-broken.json'), '{ not json');
    const files = await readdir(dir);
    expect(files.filter((f) => f.endsWith('.tmp'))).toEqual([]);

    const messages = await readOutbox(dir, 2);
    expect(messages.map((m) => m.subject)).toEqual(['Message 3', 'Message 2']);
    expect(messages[0]).toMatchObject({ to: 'user3@example.com', text: 'Body 3', from: 'Latchkey <no-reply@localhost>' });
    expect(Date.parse(messages[0]!.at)).not.toBeNaN();
    expect(await readOutbox(join(outboxDir, 'missing'), 50)).toEqual([]);
  });

  it('in production, sending fails with mail_unavailable', async () => {
    const mailer = createMailer(testConfig({ NODE_ENV: 'production', LATCHKEY_OUTBOX_DIR: outboxDir }));
    expect(mailer.kind).toBe('none');
    await expect(mailer.send({ to: 'ada@example.com', subject: 'Hi', text: 'Hi' })).rejects.toMatchObject({ code: 'mail_unavailable' });
    expect(await readdir(outboxDir)).toEqual([]);
  });
});

describe('GET /dev/outbox', () => {
  let t: TestApp | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('lists messages with their links as links, escaped', async () => {
    t = await createTestApp({ LATCHKEY_OUTBOX_DIR: outboxDir });
    await t.app.latchkey.mailer.send({ to: 'ada@example.com', subject: 'Set up your passkey', text: `Open ${LONG_LINK}.\n<b>not bold</b>` });

    const res = await t.app.inject({ method: 'GET', url: '/dev/outbox', headers: { accept: 'text/html' } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toContain('<h1>Development outbox</h1>');
    expect(res.body).toContain('LATCHKEY_SMTP_URL');
    expect(res.body).toContain('ada@example.com');
    const href = LONG_LINK.replace(/&/g, '&amp;');
    // The full stop after the link is prose, not part of it.
    expect(res.body).toContain(`<a href="${href}">${href}</a>.`);
    expect(res.body).toContain('&lt;b>not bold&lt;/b>');

    const json = await t.app.inject({ method: 'GET', url: '/dev/outbox.json' });
    expect(json.json().messages).toMatchObject([{ to: 'ada@example.com', subject: 'Set up your passkey' }]);
  });

  it('does not exist when SMTP is configured', async () => {
    const sink = await startSmtpSink();
    try {
      t = await createTestApp({ LATCHKEY_SMTP_URL: sink.url, LATCHKEY_OUTBOX_DIR: outboxDir });
      expect(t.app.latchkey.mailer.kind).toBe('smtp');
      expect((await t.app.inject({ method: 'GET', url: '/dev/outbox' })).statusCode).toBe(404);
      expect((await t.app.inject({ method: 'GET', url: '/dev/outbox.json' })).statusCode).toBe(404);
    } finally {
      await t?.close();
      t = undefined;
      await sink.close();
    }
  });
});
