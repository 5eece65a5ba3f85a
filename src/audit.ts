import type { FastifyInstance, FastifyRequest } from 'fastify';
import { errorCatalogue, type ErrorCode } from './errors.js';
import { toAppError } from './plugins/errorHandler.js';
import { requestContext } from './plugins/sessions.js';
import type { KindRegistry } from './strategies/kindRegistry.js';

/** `refused`: Latchkey would not do it (no permission, one's own account); `failure`: it was tried and did not work. */
export type AuditOutcome = 'success' | 'failure' | 'refused';

export interface AuditArgs {
  event: string;
  outcome?: AuditOutcome;
  subjectUserId?: string | null;
  actorUserId?: string | null;
  authenticatorId?: string | null;
  detail?: Record<string, unknown>;
}

/** Record who did what to whom, from where. Never pass secrets in `detail`. */
export async function audit(app: FastifyInstance, request: FastifyRequest | null, args: AuditArgs, store = app.latchkey.store): Promise<void> {
  const ctx = request ? requestContext(request) : { ip: null, userAgent: null };
  await store.audit.record({
    at: app.latchkey.now(),
    event: args.event,
    outcome: args.outcome ?? 'success',
    // An API token acts for no person: it is the actor, unless the caller names one.
    actorUserId: args.actorUserId === undefined ? (request?.apiToken ? null : (request?.auth?.user.id ?? args.subjectUserId ?? null)) : args.actorUserId,
    actorTokenId: request?.apiToken?.id ?? null,
    subjectUserId: args.subjectUserId ?? null,
    authenticatorId: args.authenticatorId ?? null,
    ip: ctx.ip,
    userAgent: ctx.userAgent,
    detail: args.detail,
  });
}

/**
 * How many refusals and failures of one budget go into the audit log in a minute: per source (the signed-in person,
 * or the IP address) and reason, and in all. Only counts are kept for what is not recorded, so a flood from any
 * number of sources costs a bounded amount of memory.
 */
export class RefusalWindow {
  private total = 0;
  /** Recorded this minute per source and reason: at most `perMinute` keys. */
  private counts = new Map<string, number>();
  /** Not recorded this minute. */
  dropped = 0;

  constructor(
    private readonly perSource: number,
    private readonly perMinute: number,
  ) {}

  /** Whether to record one more of `key`; `last` when it is the last of its kind (or of all) this minute. */
  take(key: string): { record: false } | { record: true; last: boolean } {
    const seen = (this.counts.get(key) ?? 0) + 1;
    if (seen > this.perSource || this.total >= this.perMinute) {
      this.dropped++;
      return { record: false };
    }
    this.counts.set(key, seen);
    this.total++;
    return { record: true, last: seen === this.perSource || this.total === this.perMinute };
  }
}

/** What a minute left unrecorded, per budget ("console.signed_in": 35), told once in a record of its own. */
export interface NotRecorded {
  from: number;
  to: number;
  counts: Record<string, number>;
}

/**
 * One {@link RefusalWindow} per budget, all on one minute: a budget per area (console, enrolment) and per kind of
 * source (signed in, signed out), so anonymous requests to `/enrol/:token`, which anyone can send, never use up what
 * signed-in agents' refusals in the console are recorded with. When a minute left anything unrecorded, the first
 * refusal after it (of any budget, recorded or not) carries the counts, so drops always leave a trace.
 */
export class RefusalBudgets {
  private start = -Infinity;
  private windows = new Map<string, RefusalWindow>();

  constructor(
    private readonly perSource: number,
    private readonly perMinute: number,
  ) {}

  take(budget: string, key: string, now: number): { taken: ReturnType<RefusalWindow['take']>; notRecorded?: NotRecorded } {
    let notRecorded: NotRecorded | undefined;
    if (now - this.start >= 60_000) {
      const counts = Object.fromEntries([...this.windows].filter(([, w]) => w.dropped > 0).map(([name, w]) => [name, w.dropped]));
      if (Object.keys(counts).length) notRecorded = { from: this.start, to: this.start + 60_000, counts };
      this.start = now;
      this.windows = new Map();
    }
    let window = this.windows.get(budget);
    if (!window) this.windows.set(budget, (window = new RefusalWindow(this.perSource, this.perMinute)));
    return { taken: window.take(key), notRecorded };
  }
}

/** One set of budgets per app (keyed by its context object, which every plugin of that app shares). */
const budgets = new WeakMap<object, RefusalBudgets>();

export interface RefusalAuditOptions {
  /** Recorded as `<area>.refused` or `<area>.failed`. */
  area: 'console' | 'enrolment' | 'api' | 'scim';
  /** Codes the routes record themselves, with more to say. */
  skip?: readonly ErrorCode[];
  /** The person the request was about, where it can tell (never from anything secret in the answer). */
  subjectOf?: (request: FastifyRequest) => Promise<string | null | undefined>;
}

/**
 * Record a refusal or failure: who (the signed-in person), what (the route as declared, never the URL with its
 * tokens), why (the error code), for whom and from where — rate-limited by {@link RefusalBudgets}. Never a body.
 */
export async function auditRefusal(
  app: FastifyInstance,
  request: FastifyRequest,
  args: {
    event: string;
    outcome: AuditOutcome;
    reason: string;
    /** For whom, or how to find out: looked up only when the record is written, so a flood costs no queries. */
    subject?: string | null | (() => Promise<string | null | undefined>);
    actorUserId?: string | null;
    detail?: Record<string, unknown>;
  },
): Promise<void> {
  const { config, now } = app.latchkey;
  let perApp = budgets.get(app.latchkey);
  if (!perApp) budgets.set(app.latchkey, (perApp = new RefusalBudgets(config.auditRefusalsPerSourcePerMinute, config.auditRefusalsPerMinute)));
  const actor = args.actorUserId === undefined ? (request.auth?.user.id ?? null) : args.actorUserId;
  // Signed in (whether or not the record names them as its actor) or not: the two never share a budget.
  const signedIn = actor ?? request.auth?.user.id ?? null;
  const source = signedIn ? `user:${signedIn}` : `ip:${requestContext(request).ip}`;
  const budget = `${args.event.split('.')[0]}.${signedIn ? 'signed_in' : 'signed_out'}`;
  const { taken, notRecorded } = perApp.take(budget, `${source} ${args.event} ${args.reason}`, now());
  if (notRecorded) {
    await audit(app, null, {
      event: 'audit.not_recorded',
      outcome: 'failure',
      actorUserId: null,
      detail: { from: new Date(notRecorded.from).toISOString(), to: new Date(notRecorded.to).toISOString(), notRecorded: notRecorded.counts },
    });
  }
  if (!taken.record) return;
  const detail: Record<string, unknown> = { action: `${request.method} ${request.routeOptions.url ?? ''}`, reason: args.reason, ...args.detail };
  if (taken.last) detail.moreNotRecordedThisMinute = true;
  const subjectUserId = typeof args.subject === 'function' ? await args.subject() : args.subject;
  await audit(app, request, { event: args.event, outcome: args.outcome, actorUserId: actor, subjectUserId: subjectUserId ?? null, detail });
}

/**
 * In this plugin context, record every request answered with an error (except "sign in first"): the console's
 * refusals, and failed enrolments from links and codes agents issued.
 */
export function auditRefusals(app: FastifyInstance, options: RefusalAuditOptions): void {
  app.addHook('onError', async (request, _reply, error) => {
    const err = toAppError(error);
    if (err.code === 'not_signed_in' || options.skip?.includes(err.code)) return;
    const refused = err.status === 401 || err.status === 403;
    try {
      const subject = options.subjectOf && (() => options.subjectOf!(request));
      await auditRefusal(app, request, { event: `${options.area}.${refused ? 'refused' : 'failed'}`, outcome: refused ? 'refused' : 'failure', reason: err.code, subject });
    } catch (recordError) {
      // The answer the person gets matters more than the record of it.
      request.log.warn({ err: recordError }, 'refusal not audited');
    }
  });
}

/** Words people read in "Recent activity" and the console's audit log, for events that belong to no one kind of authenticator. */
export const auditEventLabels: Record<string, string> = {
  'signin': 'Signed in',
  'signin.failed': 'Failed sign-in attempt',
  'signup': 'Account created',
  // Each record says how (auditEventLabel): these are the words for the event as a whole, in the audit log's filter.
  'reauth': 'Confirmed it was you',
  'reauth.failed': 'Failed check that it was you',
  'session.ended': 'Signed out a session',
  'signout': 'Signed out',
  'enrolment.invited': 'Invite link created',
  'enrolment.completed': 'Passkey set up from invite link',
  'user.created': 'Account created',
  'users.imported': 'Users imported from a CSV file',
  'user.suspended': 'User suspended',
  'user.reactivated': 'User reactivated',
  'user.updated': 'User details changed',
  'user.unlocked': 'Failed sign-ins cleared',
  'self_service.added': 'Authenticator added by the person (self-service)',
  'recovery.authenticator_added': 'Authenticator added by recovery (identity check)',
  'self_service.code_sent': 'Self-service code emailed',
  'self_service.code_failed': 'Wrong self-service code',
  'self_service.check_failed': 'Self-service details did not match',
  'self_service.limited': 'Self-service attempts limited',
  'password.changed': 'Password changed',
  'authenticator.removed_by_user': 'Sign-in method removed',
  'user.national_id_set': 'National identifier recorded',
  'roles.changed': 'Roles changed',
  'enrolment.link_issued': 'Enrolment link generated',
  'enrolment.code_issued': '9-character code generated',
  'enrolment.emailed': 'Enrolment email sent',
  'enrolment.revoked': 'Enrolment link or code revoked',
  'enrolment.code_redeemed': '9-character code entered',
  'enrolment.code_failed': 'Wrong enrolment code entered',
  'authenticator.removed': 'Authenticator removed by an agent',
  'template.created': 'Email template added',
  'template.updated': 'Email template changed',
  'template.deleted': 'Email template deleted',
  'audit.exported': 'Audit log exported',
  'admin.bootstrap': 'First RA Manager created',
  'service.added': 'Service registered',
  'service.removed': 'Service removed',
  'policy.changed': 'Authenticator policy changed',
  'metadata.imported': 'FIDO metadata imported',
  'metadata.refused': 'FIDO metadata refused',
  'oidc.consent': 'Allowed a service to sign you in',
  'oidc.step_up': 'A service asked for a stronger way to sign in',
  'console.refused': 'Console action refused',
  'console.failed': 'Console action failed',
  'enrolment.failed': 'Setting up a passkey from a link or code failed',
  'enrolment.refused': 'Setting up a passkey from a link or code refused',
  'audit.not_recorded': 'Refusals and failures not recorded (too many in one minute)',
  'api.read': 'Read through the admin API',
  'api.refused': 'Admin API request refused',
  'api.failed': 'Admin API request failed',
  'scim.read': 'Read through SCIM',
  'scim.refused': 'SCIM request refused',
  'scim.failed': 'SCIM request failed',
  'api_token.created': 'API token created',
  'api_token.revoked': 'API token revoked',
  'enrolment.expired': 'Enrolment link or code expired unused',
  'webhook.added': 'Webhook endpoint added',
  'webhook.changed': 'Webhook endpoint changed',
  'webhook.secret_rotated': 'Webhook signing secret replaced',
  'webhook.paused': 'Webhook endpoint paused',
  'webhook.resumed': 'Webhook endpoint resumed',
  'webhook.deleted': 'Webhook endpoint deleted',
  'webhook.resent': 'Webhook delivery sent again',
  'webhook.test_sent': 'Webhook test event sent',
};

/** Why a refusal or failure happened, in words for the people reading the audit log. */
const reasonWords: Partial<Record<ErrorCode, string>> = {
  forbidden: 'their role does not allow it',
  no_console_role: 'they have no registration-authority role',
  user_suspended: 'the person is suspended',
  own_account: 'it was their own account',
  credential_exists: 'that passkey is already registered',
  enrolment_code_expired: 'the code had expired',
  enrolment_code_invalid: 'wrong email address or code',
  enrolment_code_used: 'the code had already been used',
  enrolment_code_revoked: 'the code had been revoked',
  invite_expired: 'the link had expired',
  invite_used: 'the link had already been used',
  invite_revoked: 'the link had been revoked',
  invite_invalid: 'no such link',
  csrf_failed: 'the form had expired or came from another site',
  validation_failed: 'what was sent was not valid',
};

/** "Why" and "what" for a refused or failed record (null for successes), e.g. "their role does not allow it (POST /admin/users/:id/enrolments)". */
export function describeRefusal(event: { outcome: string; detail: string }): string | null {
  if (event.outcome === 'success') return null;
  let detail: { reason?: unknown; action?: unknown };
  try {
    detail = JSON.parse(event.detail) as typeof detail;
  } catch {
    return null;
  }
  if (typeof detail.reason !== 'string') return null;
  const code = detail.reason as ErrorCode;
  const why = reasonWords[code] ?? (code in errorCatalogue ? errorCatalogue[code].message : code);
  return typeof detail.action === 'string' ? `${why} (${detail.action})` : why;
}

/**
 * A check that it was the person, by how it was made: the `reauth` records' detail.method (src/flows/reauth/routes.tsx),
 * none for a passkey.
 */
const reauthLabels: Record<string, Record<string, string>> = {
  'reauth': {
    'passkey': 'Confirmed it was you with a passkey',
    'password': 'Confirmed it was you with your password',
    'password+totp': 'Confirmed it was you with your password and authenticator app',
    'linked-account': 'Confirmed it was you with your work account',
  },
  'reauth.failed': {
    'passkey': 'Failed passkey check',
    'password': 'Failed password check',
    'password+totp': 'Failed password and authenticator app check',
    'linked-account': 'Failed work account check',
  },
};

/** The words for one record in an activity list: its event's (auditEventLabelsFor), and for a check, how it was made. */
export function auditEventLabel(labels: Record<string, string>, record: { event: string; detail: string }): string {
  const byMethod = Object.hasOwn(reauthLabels, record.event) ? reauthLabels[record.event]! : {};
  const method = methodOf(record.detail);
  const label = method !== undefined && Object.hasOwn(byMethod, method) ? byMethod[method] : undefined;
  return label ?? labels[record.event] ?? record.event;
}

/** A check's method from its detail: none recorded is a passkey; undefined when the detail can't be read. */
function methodOf(detail: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(detail);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const method = (parsed as { method?: unknown }).method;
  return method === undefined ? 'passkey' : typeof method === 'string' ? method : undefined;
}

/** The words for every audit event: the shared ones above and each registered kind's own. */
export function auditEventLabelsFor(kinds: KindRegistry): Record<string, string> {
  return { ...auditEventLabels, ...kinds.auditEventLabels() };
}
