/**
 * GET /dev/outbox: the mail Latchkey would have sent, for someone trying it
 * without a mail server. Registered only when the mailer is the development
 * outbox (no LATCHKEY_SMTP_URL, not production). GET /dev/outbox.json gives
 * the same messages to tests and scripts.
 */
import type { FastifyInstance } from 'fastify';
import { formatTime, Layout } from '../views/layout.js';
import { renderPage } from '../views/render.js';
import { html } from '../http/replies.js';
import { readOutbox, type OutboxMessage } from './createMailer.js';
import { appError } from '../errors.js';

export const OUTBOX_PAGE_SIZE = 50;

/** Loopback addresses: the outbox holds live enrolment links, so only this machine may read it. */
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/;

export async function devOutboxRoutes(app: FastifyInstance) {
  const { config } = app.latchkey;

  // A server reachable from elsewhere without SMTP or NODE_ENV=production must not publish enrolment links.
  app.addHook('onRequest', async (request) => {
    if (!LOOPBACK.test(request.ip)) throw appError('not_found');
  });

  app.get('/dev/outbox', async (request, reply) => {
    const messages = await readOutbox(config.outboxDir, OUTBOX_PAGE_SIZE);
    const signedIn = request.auth ? { displayName: request.auth.user.display_name } : null;
    const page = (
      <Layout title="Development outbox" rpName={config.rpName} csrfToken={request.csrfToken} signedIn={signedIn} page="dev-outbox">
        <OutboxPage messages={messages} outboxDir={config.outboxDir} />
      </Layout>
    );
    // The messages hold live sign-in links: no cache keeps a copy.
    return html(reply, renderPage(page));
  });

  app.get('/dev/outbox.json', async (_request, reply) => {
    const messages = await readOutbox(config.outboxDir, OUTBOX_PAGE_SIZE);
    return reply.header('cache-control', 'no-store').send({ messages });
  });
}

function OutboxPage(props: { messages: OutboxMessage[]; outboxDir: string }) {
  return (
    <>
      <h1>Development outbox</h1>
      <p>
        LATCHKEY_SMTP_URL is not set, so emails are not sent: they are kept in <code>{props.outboxDir}</code> and shown here, newest first (up to{' '}
        {OUTBOX_PAGE_SIZE}). Set LATCHKEY_SMTP_URL to send them. This page does not exist in production.
      </p>
      {props.messages.length === 0 ? (
        <p>No emails yet.</p>
      ) : (
        <ol class="outbox">
          {props.messages.map((message) => (
            <li>
              <OutboxEntry message={message} />
            </li>
          ))}
        </ol>
      )}
    </>
  );
}

function OutboxEntry({ message }: { message: OutboxMessage }) {
  const headingId = `message-${message.id}`;
  return (
    <article aria-labelledby={headingId}>
      <h2 id={headingId}>{message.subject || '(no subject)'}</h2>
      <dl>
        <dt>To</dt>
        <dd>{message.to}</dd>
        <dt>From</dt>
        <dd>{message.from}</dd>
        <dt>Sent</dt>
        <dd>
          <time dateTime={message.at}>{formatTime(Date.parse(message.at))}</time>
        </dd>
      </dl>
      <pre class="mail-body">
        <LinkedText text={message.text} />
      </pre>
    </article>
  );
}

/** Ends at white space or characters that cannot end a URL in prose. */
const URL_PATTERN = /https?:\/\/[^\s<>"]+/g;
/** A sentence's full stop or closing bracket after a link is not part of it. */
const TRAILING_PUNCTUATION = /[.,;:!?)\]'’]+$/;

/** The text with each http(s) URL as a link; everything stays text nodes and attributes, which preact escapes. */
function LinkedText({ text }: { text: string }) {
  const pieces = [];
  let end = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    const url = match[0].replace(TRAILING_PUNCTUATION, '');
    const start = match.index;
    pieces.push(text.slice(end, start), <a href={url}>{url}</a>);
    end = start + url.length;
  }
  pieces.push(text.slice(end));
  return <>{pieces}</>;
}
