/** Pages of the console's webhook endpoints (src/admin/routes/webhooks.tsx). */
import type { User, WebhookDelivery, WebhookEndpoint } from '../db/schema.js';
import type { FieldError } from '../errors.js';
import { ConfirmCheckbox, CsrfField, ErrorSummary, Field, formatTime } from '../views/layout.js';
import { describeRetrySchedule } from '../webhooks/retrySchedule.js';
import { WEBHOOK_EVENT_TYPES, webhookEventLabels } from '../webhooks/events.js';
import { AdminLayout, Flash, type AdminContext } from './views.js';

/** How much of a receiver's answer the list shows (the delivery's page shows all that is kept). */
const RESPONSE_PREVIEW = 120;

function eventsOf(endpoint: WebhookEndpoint): string[] {
  try {
    const list: unknown = JSON.parse(endpoint.events);
    return Array.isArray(list) ? list.filter((e): e is string => typeof e === 'string') : [];
  } catch {
    return [];
  }
}

function eventLabel(type: string): string {
  return (webhookEventLabels as Record<string, { label: string }>)[type]?.label ?? type;
}

function EndpointStatus(props: { endpoint: WebhookEndpoint }) {
  return props.endpoint.status === 'active' ? <span class="badge status-enrolled">Active</span> : <span class="badge status-suspended">Paused</span>;
}

const deliveryStatusLabels: Record<WebhookDelivery['status'], string> = { pending: 'Waiting', delivered: 'Delivered', failed: 'Failed' };

export function WebhooksPage(m: AdminContext & { endpoints: WebhookEndpoint[]; pending: Map<string, number>; flash?: string | null }) {
  return (
    <AdminLayout {...m} title="Webhooks">
      <a href="/admin" class="back-link">
        Back to the console
      </a>
      <h1>Webhooks</h1>
      <Flash message={m.flash} />
      <p>Latchkey tells other systems (an HR feed, a helpdesk) about changes by sending signed HTTPS requests to the endpoints listed here.</p>
      {m.endpoints.length ? (
        <table aria-label="Webhook endpoints">
          <thead>
            <tr>
              <th scope="col">Address</th>
              <th scope="col">Description</th>
              <th scope="col">Events</th>
              <th scope="col">Status</th>
              <th scope="col">Waiting</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {m.endpoints.map((e) => (
              <tr data-endpoint-id={e.id}>
                <td data-label="Address" class="break">
                  {e.url}
                </td>
                <td data-label="Description">{e.description}</td>
                <td data-label="Events">{eventsOf(e).length}</td>
                <td data-label="Status">
                  <EndpointStatus endpoint={e} />
                </td>
                <td data-label="Waiting">{m.pending.get(e.id) ?? 0}</td>
                <td class="actions">
                  <a href={`/admin/webhooks/${e.id}`}>
                    Manage<span class="visually-hidden"> {e.url}</span>
                  </a>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p>No endpoints yet.</p>
      )}
      <a class="button" href="/admin/webhooks/new">
        Add an endpoint
      </a>
    </AdminLayout>
  );
}

function EventCheckboxes(props: { chosen: readonly string[]; errors: FieldError[] }) {
  const error = props.errors.find((e) => e.field.startsWith('events'));
  return (
    <div class={`field${error ? ' field-error' : ''}`}>
      <fieldset class="checkboxes" aria-describedby={error ? 'events-error' : undefined}>
        <legend>Events to send</legend>
        {error ? (
          <p class="error-message" id="events-error">
            <span class="visually-hidden">Error: </span>
            {error.message}
          </p>
        ) : null}
        {WEBHOOK_EVENT_TYPES.map((type) => (
          <div class="checkbox">
            <input type="checkbox" id={`events-${type}`} name="events" value={type} checked={props.chosen.includes(type)} />
            <label for={`events-${type}`}>
              {webhookEventLabels[type].label} <code>{type}</code>
              <span class="hint">{webhookEventLabels[type].hint}</span>
            </label>
          </div>
        ))}
      </fieldset>
    </div>
  );
}

export function WebhookFormPage(m: AdminContext & { values: { url: string; description: string; events: string[] }; errors: FieldError[] }) {
  const devHttp = m.config.origin.startsWith('http:');
  return (
    <AdminLayout {...m} title="Add a webhook endpoint">
      <a href="/admin/webhooks" class="back-link">
        Back to webhooks
      </a>
      <h1>Add a webhook endpoint</h1>
      <ErrorSummary fields={m.errors} />
      <form method="post" action="/admin/webhooks/new" novalidate>
        <CsrfField token={m.csrfToken} />
        <Field
          id="url"
          label="Address"
          hint={`Where Latchkey sends events: https:// only${devHttp ? ' (http:// to localhost or 127.0.0.1 while Latchkey runs on http)' : ''}, no user name or password.`}
          errors={m.errors}
        >
          <input type="url" id="url" name="url" value={m.values.url} maxLength={2000} autocomplete="off" spellcheck={false} />
        </Field>
        <Field id="description" label="Description (optional)" hint="What receives them, e.g. “HR feed”." errors={m.errors}>
          <input type="text" id="description" name="description" value={m.values.description} maxLength={200} />
        </Field>
        <EventCheckboxes chosen={m.values.events} errors={m.errors} />
        <button type="submit">Add endpoint</button>
      </form>
    </AdminLayout>
  );
}

/** How a receiver checks a delivery, with the secret it was just given. */
function HowToVerify(props: { secret: string }) {
  const example = `import { Webhook } from 'standardwebhooks';

const wh = new Webhook(process.env.LATCHKEY_WEBHOOK_SECRET); // ${props.secret.slice(0, 10)}…
// rawBody: the request body exactly as received (a string), headers: the request's headers.
const event = wh.verify(rawBody, headers); // throws when the signature or timestamp is wrong`;
  return (
    <>
      <h2>How to check a delivery</h2>
      <p>
        Each delivery is a POST of JSON signed to the Standard Webhooks specification: the <code>webhook-id</code>, <code>webhook-timestamp</code> and{' '}
        <code>webhook-signature</code> headers. Check the signature with the receiver’s Standard Webhooks library before acting on it, and ignore a{' '}
        <code>webhook-id</code> you have already handled: a delivery can arrive more than once. In Node.js:
      </p>
      <pre class="code">{example}</pre>
      <p>Answer with any 2xx status within 10 seconds. Anything else is tried again.</p>
    </>
  );
}

export function WebhookSecretPage(m: AdminContext & { endpoint: WebhookEndpoint; secret: string; added?: boolean }) {
  const title = m.added ? 'Webhook endpoint added' : 'New signing secret';
  return (
    <AdminLayout {...m} title={title}>
      <a href={`/admin/webhooks/${m.endpoint.id}`} class="back-link">
        Back to the endpoint
      </a>
      <h1>{title}</h1>
      <div class="notice success" role="status">
        {m.added ? `Events will be sent to ${m.endpoint.url}.` : 'Deliveries from now on are signed with this secret. The old one no longer works.'}
      </div>
      <h2>Signing secret</h2>
      <p>Copy it now and give it to the receiver: it is shown only this once.</p>
      <pre class="code" id="secret">
        {m.secret}
      </pre>
      <HowToVerify secret={m.secret} />
      <p>
        <a class="button" href={`/admin/webhooks/${m.endpoint.id}`}>
          Go to the endpoint
        </a>
      </p>
    </AdminLayout>
  );
}

function nextAttempt(d: WebhookDelivery, endpoint: WebhookEndpoint, now: number): string {
  if (d.status !== 'pending') return '';
  if (endpoint.status === 'paused') return 'When resumed';
  return d.next_attempt_at <= now ? 'Now' : formatTime(d.next_attempt_at);
}

function answer(d: WebhookDelivery, limit?: number): string {
  const body = d.response_body ?? '';
  const text = limit && body.length > limit ? `${body.slice(0, limit)}…` : body;
  if (d.response_status) return `HTTP ${d.response_status}${d.error ? ` (${d.error})` : ''}${text ? `: ${text}` : ''}`;
  return d.error ?? (d.attempts ? 'No answer' : 'Not sent yet');
}

export function WebhookEndpointPage(
  m: AdminContext & {
    endpoint: WebhookEndpoint;
    owner?: User;
    deliveries: WebhookDelivery[];
    now: number;
    errors: FieldError[];
    flash?: string | null;
    values?: { description: string; events: string[] };
  },
) {
  const e = m.endpoint;
  const values = m.values ?? { description: e.description, events: eventsOf(e) };
  const base = `/admin/webhooks/${e.id}`;
  return (
    <AdminLayout {...m} title={`Webhook endpoint: ${e.url}`}>
      <a href="/admin/webhooks" class="back-link">
        Back to webhooks
      </a>
      <h1 class="break">{e.url}</h1>
      <Flash message={m.flash} />
      <ErrorSummary fields={m.errors} />
      {e.status === 'paused' ? (
        <div class="notice warning" role="status">
          Paused {e.paused_at ? formatTime(e.paused_at) : ''}: nothing is sent until it is resumed. Events are kept for it meanwhile.
        </div>
      ) : null}
      <dl class="summary">
        <dt>Status</dt>
        <dd>
          <EndpointStatus endpoint={e} />
        </dd>
        <dt>Added</dt>
        <dd>
          {formatTime(e.created_at)}
          {m.owner ? ` by ${m.owner.display_name} (${m.owner.email}), who is emailed if it is paused for failing` : ''}
        </dd>
        <dt>Failed attempts since the last delivery</dt>
        <dd>{e.consecutive_failures}</dd>
        <dt>Retries</dt>
        <dd>
          {describeRetrySchedule(m.config.webhookRetrySeconds)}. If the last fails, the delivery is marked failed and the endpoint paused.
        </dd>
      </dl>

      <div class="actions">
        <form method="post" action={`${base}/${e.status === 'active' ? 'pause' : 'resume'}`}>
          <CsrfField token={m.csrfToken} />
          <button type="submit" class="secondary">
            {e.status === 'active' ? 'Pause' : 'Resume'}
          </button>
        </form>
        <form method="post" action={`${base}/test`}>
          <CsrfField token={m.csrfToken} />
          <button type="submit" class="secondary">
            Send test event
          </button>
        </form>
      </div>

      <h2 id="deliveries">Recent deliveries</h2>
      {m.deliveries.length ? (
        <table aria-labelledby="deliveries">
          <thead>
            <tr>
              <th scope="col">Event</th>
              <th scope="col">Created</th>
              <th scope="col">Status</th>
              <th scope="col">Attempts</th>
              <th scope="col">Answer</th>
              <th scope="col">Next attempt</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {m.deliveries.map((d) => (
              <tr data-delivery-id={d.id}>
                <td data-label="Event">{eventLabel(d.event_type)}</td>
                <td data-label="Created">{formatTime(d.created_at)}</td>
                <td data-label="Status">{deliveryStatusLabels[d.status]}</td>
                <td data-label="Attempts">{d.attempts}</td>
                <td data-label="Answer" class="break">
                  {answer(d, RESPONSE_PREVIEW)}
                </td>
                <td data-label="Next attempt">{nextAttempt(d, e, m.now)}</td>
                <td class="actions">
                  <a href={`${base}/deliveries/${d.id}`}>
                    Details<span class="visually-hidden"> of {d.id}</span>
                  </a>
                  {d.status === 'failed' ? (
                    <form method="post" action={`${base}/deliveries/${d.id}/retry`}>
                      <CsrfField token={m.csrfToken} />
                      <button type="submit" class="secondary">
                        Send again<span class="visually-hidden"> {d.id}</span>
                      </button>
                    </form>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p>Nothing has been sent to this endpoint yet.</p>
      )}

      <h2>Change events</h2>
      <form method="post" action={base} novalidate>
        <CsrfField token={m.csrfToken} />
        <Field id="description" label="Description (optional)" errors={m.errors}>
          <input type="text" id="description" name="description" value={values.description} maxLength={200} />
        </Field>
        <EventCheckboxes chosen={values.events} errors={m.errors} />
        <button type="submit">Save events</button>
      </form>

      <h2>Signing secret</h2>
      <p>Replace the secret if it may have been seen by someone else. Deliveries are signed with the new one at once, so give it to the receiver straight away.</p>
      <form method="post" action={`${base}/rotate`}>
        <CsrfField token={m.csrfToken} />
        <button type="submit" class="secondary">
          Replace the signing secret
        </button>
      </form>

      <h2>Delete this endpoint</h2>
      <form method="get" action={`${base}/delete`}>
        <button type="submit" class="warning">
          Delete endpoint
        </button>
      </form>
    </AdminLayout>
  );
}

export function WebhookDeletePage(m: AdminContext & { endpoint: WebhookEndpoint; error?: string | null }) {
  return (
    <AdminLayout {...m} title="Delete webhook endpoint">
      <a href={`/admin/webhooks/${m.endpoint.id}`} class="back-link">
        Back to the endpoint
      </a>
      <h1>Delete webhook endpoint</h1>
      <ErrorSummary fields={m.error ? [{ field: 'confirm', message: m.error }] : []} />
      <p class="break">
        Nothing more is sent to <strong>{m.endpoint.url}</strong>, and deliveries still waiting for it are dropped.
      </p>
      <form method="post" action={`/admin/webhooks/${m.endpoint.id}/delete`} novalidate>
        <CsrfField token={m.csrfToken} />
        <ConfirmCheckbox label="I want to delete this endpoint" error={m.error} />
        <button type="submit" class="warning">
          Delete endpoint
        </button>
      </form>
    </AdminLayout>
  );
}

/** A value inside single quotes for a POSIX shell. */
function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export function WebhookDeliveryPage(m: AdminContext & { endpoint: WebhookEndpoint; delivery: WebhookDelivery; headers: Record<string, string>; now: number }) {
  const d = m.delivery;
  const curl = [`curl -i -X POST ${shellQuote(m.endpoint.url)}`, ...Object.entries(m.headers).map(([k, v]) => `  -H ${shellQuote(`${k}: ${v}`)}`), `  --data-raw ${shellQuote(d.payload)}`].join(' \\\n');
  return (
    <AdminLayout {...m} title={`Delivery ${d.id}`}>
      <a href={`/admin/webhooks/${m.endpoint.id}`} class="back-link">
        Back to the endpoint
      </a>
      <h1>{eventLabel(d.event_type)}</h1>
      <dl class="summary">
        <dt>Message id (webhook-id)</dt>
        <dd>
          <code>{d.id}</code>
        </dd>
        <dt>Status</dt>
        <dd>{deliveryStatusLabels[d.status]}</dd>
        <dt>Created</dt>
        <dd>{formatTime(d.created_at)}</dd>
        <dt>Attempts</dt>
        <dd>{d.attempts}</dd>
        <dt>Last attempt</dt>
        <dd>{d.last_attempt_at ? formatTime(d.last_attempt_at) : 'None yet'}</dd>
        <dt>Next attempt</dt>
        <dd>{nextAttempt(d, m.endpoint, m.now) || 'None'}</dd>
        <dt>Answer</dt>
        <dd class="break">{answer(d)}</dd>
      </dl>
      <h2>What was sent</h2>
      <pre class="code">{JSON.stringify(JSON.parse(d.payload), null, 2)}</pre>
      <h2>Check your receiver with curl</h2>
      <p>This sends the same delivery again, signed just now with the endpoint’s secret: it passes a receiver’s timestamp check for five minutes. Reload the page for a fresh signature.</p>
      <pre class="code">{curl}</pre>
    </AdminLayout>
  );
}
