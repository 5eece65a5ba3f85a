/**
 * Makes the {@link Mailer} the configuration asks for: SMTP when
 * LATCHKEY_SMTP_URL is set; otherwise the development outbox, or, in
 * production, no mail at all, so a missing setting fails where people see it
 * (`mail_unavailable`) instead of dropping enrolment links on a disk nobody reads.
 *
 * Message bodies carry single-use enrolment links: nothing here logs them, and
 * errors say what failed (refused, timed out, authentication …), never what was sent.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Transporter } from 'nodemailer';
import type { Config } from '../config/index.js';
import { appError, type AppError } from '../errors.js';
import type { Mailer, OutgoingMail } from './mailer.js';

/** One message as the development outbox keeps it: one JSON file per message. */
export interface OutboxMessage {
  /** Also the file name without `.json`; ids sort by time. */
  id: string;
  /** ISO 8601 time the message was written. */
  at: string;
  from: string;
  to: string;
  subject: string;
  text: string;
}

/** Long enough for a slow submission server, short enough that a person waiting on a page gets an answer. */
const SMTP_TIMEOUT_MS = 10_000;

export function createMailer(config: Pick<Config, 'smtpUrl' | 'mailFrom' | 'outboxDir' | 'production'>): Mailer {
  if (config.smtpUrl) return createSmtpMailer(config.smtpUrl, config.mailFrom);
  if (!config.production) return createOutboxMailer(config.outboxDir, config.mailFrom);
  return {
    kind: 'none',
    send: async () => {
      throw appError('mail_unavailable');
    },
    close: async () => {},
  };
}

function createSmtpMailer(smtpUrl: string, from: string): Mailer {
  // nodemailer is loaded with the first message, not at start: about 2.5 MiB of heap that a server sending no mail
  // (or one a day) need not hold from the start. The transport opens no connection before a message either way.
  let transport: Promise<Transporter> | undefined;
  const openTransport = () =>
    (transport ??= import('nodemailer').then(({ createTransport }) =>
      // Settings in the URL's query (e.g. ?connectionTimeout=) still win over these defaults.
      createTransport({
        url: smtpUrl,
        connectionTimeout: SMTP_TIMEOUT_MS,
        greetingTimeout: SMTP_TIMEOUT_MS,
        socketTimeout: SMTP_TIMEOUT_MS,
      }),
    ).catch((err: unknown) => {
      // Not kept: the next message tries again rather than failing until a restart.
      transport = undefined;
      throw err;
    }));
  return {
    kind: 'smtp',
    send: async (mail) => {
      try {
        await (await openTransport()).sendMail({ from, to: mail.to, subject: mail.subject, text: mail.text });
      } catch (error) {
        throw mailUnavailable(error);
      }
    },
    close: async () => (await transport?.catch(() => undefined))?.close(),
  };
}

/** Failures before any message data is sent: their text names the server and the network error, nothing of the message. */
const CONNECTION_FAILURES = new Set(['ECONNECTION', 'ESOCKET', 'ETIMEDOUT', 'EDNS', 'ETLS']);

/**
 * The error handler logs a 5xx's cause for the operator. A reply to the
 * envelope or the data can quote addresses or content, so only connection
 * failures keep their text; the rest keep their code (EAUTH, EENVELOPE …) and
 * the SMTP reply code.
 */
function mailUnavailable(error: unknown): AppError {
  const { code, responseCode, message } = (error ?? {}) as { code?: unknown; responseCode?: unknown; message?: unknown };
  const detail = typeof code === 'string' && CONNECTION_FAILURES.has(code) ? `: ${String(message)}` : '';
  const reply = responseCode ? ` (reply ${String(responseCode)})` : '';
  const failure = appError('mail_unavailable');
  failure.cause = new Error(`SMTP send failed: ${String(code ?? 'unknown error')}${reply}${detail}`);
  return failure;
}

function createOutboxMailer(dir: string, from: string): Mailer {
  // Two messages in one millisecond still get increasing ids, so the outbox keeps their order.
  let lastMs = 0;
  return {
    kind: 'outbox',
    send: async (mail: OutgoingMail) => {
      const ms = (lastMs = Math.max(Date.now(), lastMs + 1));
      const id = `${String(ms).padStart(13, '0')}-${randomBytes(4).toString('hex')}`;
      const message: OutboxMessage = { id, at: new Date(ms).toISOString(), from, to: mail.to, subject: mail.subject, text: mail.text };
      const file = join(dir, `${id}.json`);
      const temporary = `${file}.tmp`;
      try {
        // The messages hold sign-in links: readable by this user only.
        await mkdir(dir, { recursive: true, mode: 0o700 });
        await writeFile(temporary, JSON.stringify(message, null, 2), { mode: 0o600, flag: 'wx' });
        // A reader of the outbox never sees half a message.
        await rename(temporary, file);
      } catch {
        throw appError('mail_unavailable');
      }
    },
    close: async () => {},
  };
}

/** The newest `limit` messages in the outbox, newest first; files that cannot be read or parsed are skipped. */
export async function readOutbox(dir: string, limit: number): Promise<OutboxMessage[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const newestFirst = names.filter((name) => name.endsWith('.json')).sort().reverse();
  const messages: OutboxMessage[] = [];
  for (const name of newestFirst) {
    if (messages.length >= limit) break;
    const message = await readOutboxFile(join(dir, name));
    if (message) messages.push(message);
  }
  return messages;
}

async function readOutboxFile(path: string): Promise<OutboxMessage | null> {
  try {
    const value = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    const fields = ['id', 'at', 'from', 'to', 'subject', 'text'] as const;
    if (!fields.every((field) => typeof value[field] === 'string')) return null;
    return Object.fromEntries(fields.map((field) => [field, value[field]])) as unknown as OutboxMessage;
  } catch {
    return null;
  }
}
