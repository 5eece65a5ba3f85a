/**
 * The email to the RA Manager who added a webhook endpoint when Latchkey pauses it: a delivery to it failed at every
 * attempt for about a day. Best effort, like the other notices: a mail server that is down is logged, and the console
 * and the audit log still show the endpoint paused.
 */
import type { Config } from '../config/index.js';
import type { User, WebhookEndpoint } from '../db/schema.js';
import { describeRetrySpan } from '../webhooks/retrySchedule.js';
import type { Mailer } from './mailer.js';

/** Send the notice; false (and a warning in the log) when it could not be sent. */
export async function sendWebhookPausedNotice(
  deps: { mailer: Mailer; config: Pick<Config, 'organisation' | 'origin' | 'webhookRetrySeconds'>; log: { warn(obj: object, msg: string): void } },
  owner: Pick<User, 'email' | 'display_name'>,
  endpoint: Pick<WebhookEndpoint, 'id' | 'url' | 'description'>,
  lastFailure: string,
): Promise<boolean> {
  const { organisation, origin, webhookRetrySeconds } = deps.config;
  const span = describeRetrySpan(webhookRetrySeconds);
  try {
    await deps.mailer.send({
      to: owner.email,
      subject: `${organisation}: webhook endpoint paused`,
      text: `Hello ${owner.display_name},

Latchkey has paused the webhook endpoint you added${endpoint.description ? ` ("${endpoint.description}")` : ''}:

  ${endpoint.url}

A delivery to it failed at each of ${webhookRetrySeconds.length} attempts over ${span}. The last attempt: ${lastFailure}.

While it is paused nothing is sent to it; events are kept and sent when it is resumed. Check the receiver, then resume it in the console:

  ${origin}/admin/webhooks/${endpoint.id}
`,
    });
    return true;
  } catch (err) {
    deps.log.warn({ code: (err as { code?: string }).code }, 'webhook paused notice not sent');
    return false;
  }
}
