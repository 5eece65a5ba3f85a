/**
 * Which audit events are webhook events, and what each delivery says. Every change that matters is already audited in
 * the transaction that makes it (src/audit.ts), so this table is the one place that turns such a record into outbox
 * rows (src/db/persisters/webhooks.ts, called from the audit persister): a change that rolls back leaves neither.
 */

/** Webhook event types (Standard Webhooks style, dotted), in the order the console lists them. */
export const WEBHOOK_EVENT_TYPES = [
  'user.created',
  'user.suspended',
  'enrolment.issued',
  'enrolment.completed',
  'enrolment.expired',
  'authenticator.added',
  'authenticator.removed',
  'authenticator.flagged',
  'role.changed',
] as const;

export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** A test delivery ("Send test event"): never chosen, sent only when asked for. */
export const WEBHOOK_TEST_EVENT = 'webhook.test';

export function isWebhookEventType(value: string): value is WebhookEventType {
  return (WEBHOOK_EVENT_TYPES as readonly string[]).includes(value);
}

/** Words for the console's checkboxes and delivery lists. */
export const webhookEventLabels: Record<WebhookEventType | typeof WEBHOOK_TEST_EVENT, { label: string; hint: string }> = {
  'user.created': { label: 'User created', hint: 'Added by an agent, by import or provisioning, or signed up.' },
  'user.suspended': { label: 'User suspended', hint: 'An agent suspended them: they can no longer sign in.' },
  'enrolment.issued': { label: 'Enrolment issued', hint: 'A link, a 9-character code or an enrolment email was issued.' },
  'enrolment.completed': { label: 'Enrolment completed', hint: 'The person set up a passkey from a link or code.' },
  'enrolment.expired': { label: 'Enrolment expired', hint: 'A link or code ran out of time unused.' },
  'authenticator.added': { label: 'Authenticator added', hint: 'A passkey, authenticator app, password or work account was added.' },
  'authenticator.removed': { label: 'Authenticator removed', hint: 'By the person or by an agent.' },
  'authenticator.flagged': {
    label: 'Authenticator flagged',
    hint: 'Its model was reported compromised by the FIDO Alliance, or its signature counter went backwards (a possible copy).',
  },
  'role.changed': { label: 'Role changed', hint: 'Registration-authority roles were granted or revoked.' },
  'webhook.test': { label: 'Test event', hint: 'Sent from the console to check the endpoint.' },
};

/** What an audit record holds, as the audit persister writes it. */
export interface AuditedChange {
  event: string;
  outcome: string;
  at: number;
  actorUserId?: string | null;
  subjectUserId?: string | null;
  authenticatorId?: string | null;
  detail?: Record<string, unknown>;
}

interface Mapping {
  type: WebhookEventType;
  /** What the delivery adds to `data` from the record's detail (never a secret, token, code or national identifier). */
  data?: (detail: Record<string, unknown>) => Record<string, unknown>;
  /** Records of this event that are not the change (e.g. a link emailed again). */
  skip?: (detail: Record<string, unknown>) => boolean;
  /** The authenticator's kind when its row is gone (removals) or the event names it. */
  kind?: string;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const enrolment = (method?: string) => (d: Record<string, unknown>) => ({
  enrolment: { id: str(d.flowId), method: str(d.method) ?? method, ...(d.requires ? { requires: d.requires } : {}) },
});

/**
 * Audit event → webhook event. Adding an authenticator is reported by the kind's own record (`passkey.added`,
 * `totp.added`, `linked_account.added`, `password.set`), written wherever one is added (enrolment, sign-up, settings,
 * self-service, recovery); `self_service.added` and `recovery.authenticator_added` describe the same addition again,
 * so they are left out.
 */
const mappings: Record<string, Mapping> = {
  'user.created': { type: 'user.created', data: (d) => ({ via: str(d.via) ?? 'console' }) },
  'signup': { type: 'user.created', data: () => ({ via: 'signup' }) },
  'user.suspended': { type: 'user.suspended' },
  'enrolment.link_issued': { type: 'enrolment.issued', data: enrolment('link') },
  'enrolment.code_issued': { type: 'enrolment.issued', data: enrolment('code') },
  // Issuing by email is recorded once the email was accepted; "send this link by email" re-sends one already issued.
  'enrolment.emailed': { type: 'enrolment.issued', data: enrolment('email'), skip: (d) => d.resent === true },
  'enrolment.invited': { type: 'enrolment.issued', data: enrolment('cli') },
  'enrolment.completed': { type: 'enrolment.completed', data: enrolment() },
  'enrolment.expired': { type: 'enrolment.expired', data: enrolment() },
  'passkey.added': { type: 'authenticator.added', kind: 'passkey' },
  'totp.added': { type: 'authenticator.added', kind: 'totp' },
  'linked_account.added': { type: 'authenticator.added', kind: 'linked-account' },
  'password.set': { type: 'authenticator.added', kind: 'password' },
  'passkey.removed': { type: 'authenticator.removed', kind: 'passkey' },
  'authenticator.removed': { type: 'authenticator.removed' },
  'authenticator.removed_by_user': { type: 'authenticator.removed' },
  'passkey.model_compromised': {
    type: 'authenticator.flagged',
    kind: 'passkey',
    data: (d) => ({ reason: 'model_compromised', model: { name: str(d.model), aaguid: str(d.aaguid), status: str(d.status) }, action: str(d.action) }),
  },
  'passkey.counter_regressed': { type: 'authenticator.flagged', kind: 'passkey', data: () => ({ reason: 'counter_regressed' }) },
  'roles.changed': { type: 'role.changed', data: (d) => ({ roles: { added: d.added ?? [], removed: d.removed ?? [] } }) },
};

/** The webhook event an audit record is, or undefined: a map lookup, so records that are not (every sign-in) cost nothing more. */
export function webhookEventFor(change: Pick<AuditedChange, 'event' | 'outcome' | 'detail'>): { type: WebhookEventType; mapping: Mapping } | undefined {
  const mapping = Object.hasOwn(mappings, change.event) ? mappings[change.event] : undefined;
  // A refusal changed nothing.
  if (!mapping || change.outcome === 'refused') return undefined;
  if (mapping.skip?.(change.detail ?? {})) return undefined;
  return { type: mapping.type, mapping };
}

/** Who and what a delivery is about, looked up in the transaction of the change. */
export interface DeliveryFacts {
  user?: { id: string; email: string; display_name: string } | undefined;
  actor?: { id: string; email: string; display_name: string } | undefined;
  authenticator?: { id: string; type: string } | undefined;
}

/**
 * The Standard Webhooks body: `{ type, timestamp, data }`. `data.user` is the person the change is about; `actor` the
 * person who made it (absent when Latchkey did, e.g. an expiry); `authenticator` its id and kind.
 */
export function webhookPayload(change: AuditedChange, found: { type: WebhookEventType; mapping: Mapping }, facts: DeliveryFacts): string {
  const detail = change.detail ?? {};
  const data: Record<string, unknown> = {};
  if (change.subjectUserId) {
    data.user = facts.user ? { id: facts.user.id, email: facts.user.email, name: facts.user.display_name } : { id: change.subjectUserId };
  }
  if (change.authenticatorId) {
    const kind = facts.authenticator?.type ?? str(detail.type) ?? found.mapping.kind;
    data.authenticator = { id: change.authenticatorId, ...(kind ? { kind } : {}) };
  }
  if (change.actorUserId && facts.actor) data.actor = { id: facts.actor.id, email: facts.actor.email, name: facts.actor.display_name };
  Object.assign(data, found.mapping.data?.(detail));
  return JSON.stringify({ type: found.type, timestamp: new Date(change.at).toISOString(), data });
}
