/**
 * A real SMTP server for tests: `smtp-server` on 127.0.0.1, plain SMTP, any
 * sender and recipient accepted, every message kept and decoded. The decoder
 * covers what nodemailer produces (RFC 2047 encoded-word headers; a text/plain
 * body in quoted-printable, base64 or 7bit/8bit, alone or inside multipart), so
 * a test compares the text a person would read with the text that was sent.
 */
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  /** The decoded From header. */
  from: string;
  /** The envelope recipients (RCPT TO): who the message was delivered to. */
  to: string[];
  /** The decoded Subject header. */
  subject: string;
  /** The text/plain body, decoded, with line endings as `\n` (SMTP cannot tell "abc" from "abc\n": both read as "abc"). */
  text: string;
  /** Unfolded, decoded headers by lower-case name (the first of each name). */
  headers: Record<string, string>;
  /** The message as it arrived on the wire (CRLF line endings). */
  raw: string;
}

export interface SmtpSink {
  /** `smtp://127.0.0.1:<port>`, ready for LATCHKEY_SMTP_URL. */
  url: string;
  messages: ReceivedMail[];
  /** The first message (already received or arriving within `timeoutMs`) that matches. */
  waitFor(predicate: (mail: ReceivedMail) => boolean, timeoutMs?: number): Promise<ReceivedMail>;
  clear(): void;
  close(): Promise<void>;
}

export async function startSmtpSink(): Promise<SmtpSink> {
  const messages: ReceivedMail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    // Without a certificate, offering STARTTLS would make nodemailer upgrade to TLS and fail.
    disabledCommands: ['STARTTLS'],
    logger: false,
    // Tests close the sink while a refused-send test may still hold a socket.
    closeTimeout: 500,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        try {
          messages.push({ ...decodeMessage(Buffer.concat(chunks)), to: session.envelope.rcptTo.map((r) => r.address) });
          callback();
        } catch (error) {
          callback(error as Error);
        }
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.server.address() as AddressInfo;

  return {
    url: `smtp://127.0.0.1:${port}`,
    messages,
    async waitFor(predicate, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = messages.find(predicate);
        if (found) return found;
        if (Date.now() >= deadline) {
          const seen = messages.map((m) => JSON.stringify(m.subject)).join(', ') || 'none';
          throw new Error(`SMTP sink: no matching message within ${timeoutMs} ms (received ${messages.length}: ${seen})`);
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    clear() {
      messages.length = 0;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

interface Entity {
  headers: Record<string, string>;
  /** Body bytes as a latin1 string (one character per byte), line endings `\n`. */
  body: string;
}

function decodeMessage(raw: Buffer): Omit<ReceivedMail, 'to'> {
  // latin1 keeps every byte as one character, so 8bit and base64 bodies decode from the exact bytes.
  // The data always ends with a line break (RFC 5321 §4.1.1.4): it ends the last line, it is not text.
  const entity = parseEntity(raw.toString('latin1').replace(/\r\n/g, '\n').replace(/\n$/, ''));
  return {
    from: entity.headers.from ?? '',
    subject: entity.headers.subject ?? '',
    text: findPlainText(entity) ?? '',
    headers: entity.headers,
    raw: raw.toString('utf8'),
  };
}

function parseEntity(source: string): Entity {
  const split = source.indexOf('\n\n');
  const head = split === -1 ? source : source.slice(0, split);
  const body = split === -1 ? '' : source.slice(split + 2);
  const headers: Record<string, string> = {};
  // RFC 5322 §2.2.3: unfolding removes the line break before white space.
  for (const line of head.replace(/\n(?=[ \t])/g, '').split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    // Raw 8-bit header bytes are UTF-8 (RFC 6532); encoded-words are ASCII.
    headers[name] ??= decodeEncodedWords(Buffer.from(line.slice(colon + 1).trim(), 'latin1').toString('utf8'));
  }
  return { headers, body };
}

/** The first text/plain part that is not an attachment, searched depth first. */
function findPlainText(entity: Entity): string | null {
  const { type, params } = parseHeaderValue(entity.headers['content-type'] ?? 'text/plain; charset=us-ascii');
  if (type.startsWith('multipart/')) {
    if (!params.boundary) throw new Error('SMTP sink: multipart message without a boundary');
    for (const part of splitMultipart(entity.body, params.boundary)) {
      const text = findPlainText(parseEntity(part));
      if (text !== null) return text;
    }
    return null;
  }
  if (type !== 'text/plain' || /^\s*attachment/i.test(entity.headers['content-disposition'] ?? '')) return null;
  const bytes = decodeTransfer(entity.body, (entity.headers['content-transfer-encoding'] ?? '7bit').trim().toLowerCase());
  return new TextDecoder(params.charset ?? 'us-ascii').decode(bytes);
}

/** RFC 2046 §5.1.1: the line break before a delimiter line belongs to the delimiter. */
function splitMultipart(body: string, boundary: string): string[] {
  const parts: string[] = [];
  let current: string[] | null = null;
  for (const line of body.split('\n')) {
    const marker = line.trimEnd();
    if (marker === `--${boundary}--`) break;
    if (marker === `--${boundary}`) {
      if (current) parts.push(current.join('\n'));
      current = [];
    } else {
      current?.push(line);
    }
  }
  if (current) parts.push(current.join('\n'));
  return parts;
}

function decodeTransfer(body: string, encoding: string): Buffer {
  if (encoding === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64');
  if (encoding === 'quoted-printable') {
    // RFC 2045 §6.7: "=" at a line end is a soft break that the encoder added.
    const unwrapped = body.replace(/=\n/g, '').replace(/=([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    return Buffer.from(unwrapped, 'latin1');
  }
  return Buffer.from(body, 'latin1');
}

/** `text/plain; charset="utf-8"` → type and lower-case parameter names. */
function parseHeaderValue(value: string): { type: string; params: Record<string, string> } {
  const params: Record<string, string> = {};
  for (const m of value.matchAll(/;\s*([^=\s;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))/g)) {
    params[m[1]!.toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!;
  }
  return { type: value.split(';')[0]!.trim().toLowerCase(), params };
}

const ENCODED_WORD = /=\?([^?]+)\?([bBqQ])\?([^?]*)\?=/g;

/**
 * RFC 2047 encoded-words (`=?UTF-8?Q?…?=`, `=?UTF-8?B?…?=`). White space between
 * two encoded-words is not part of the text (§6.2), and adjacent words in one
 * charset are decoded together so a character split across them survives.
 */
function decodeEncodedWords(value: string): string {
  let out = '';
  let pending: { charset: string; bytes: Buffer[] } | null = null;
  let end = 0;
  const flush = () => {
    if (pending) out += new TextDecoder(pending.charset).decode(Buffer.concat(pending.bytes));
    pending = null;
  };
  for (const m of value.matchAll(ENCODED_WORD)) {
    const gap = value.slice(end, m.index);
    if (!(pending && /^\s*$/.test(gap))) {
      flush();
      out += gap;
    }
    // RFC 2231 §5: a language may follow the charset after "*".
    const charset = m[1]!.split('*')[0]!.toLowerCase();
    const text = m[3]!;
    const bytes =
      m[2]!.toUpperCase() === 'B'
        ? Buffer.from(text, 'base64')
        : Buffer.from(text.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))), 'latin1');
    if (pending && pending.charset !== charset) flush();
    pending ??= { charset, bytes: [] };
    pending.bytes.push(bytes);
    end = m.index + m[0].length;
  }
  flush();
  return out + value.slice(end);
}
