/**
 * Enrolment links and codes.
 *
 * - A link carries a random 256-bit token, stored only as its SHA-256 in a flow
 *   record. It is consumed by a successful passkey registration, in the same
 *   transaction that stores the passkey; a cancelled or failed ceremony leaves
 *   it usable until it expires.
 * - A code (seed 003) is 9 Crockford base32 characters, valid for 60 seconds,
 *   redeemed at /enrol together with the person's email, burned after 5 wrong
 *   tries. Redeeming it consumes it and opens a short link bound to the browser
 *   that redeemed it, so the passkey ceremony is not raced by the code's minute.
 *
 * One thing is outstanding per person: issuing a link or code revokes earlier ones.
 */
import { randomBytes } from 'node:crypto';
import { Type, type Static } from 'typebox';
import type { Config } from '../../config/index.js';
import { hashToken, hmac, randomToken, safeEqual } from '../../crypto.js';
import type { Flow, User } from '../../db/schema.js';
import type { Store } from '../../db/store.js';
import { appError } from '../../errors.js';
import { flowDataReader } from '../flowMachine.js';

export const INVITE_FLOW = 'invite';
export const CODE_FLOW = 'enrol-code';
export const ENROLMENT_FLOWS = [INVITE_FLOW, CODE_FLOW];
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;
/** Used and expired invites are kept this long after expiry so their pages can say why they don't work. */
export const INVITE_RETENTION_MS = 30 * 24 * 3600 * 1000;
import { CODE_MAX_ATTEMPTS, enrolmentCodeExpiredMessage, REDEEMED_CODE_LINK_SECONDS } from './limits.js';
export { CODE_MAX_ATTEMPTS, REDEEMED_CODE_LINK_SECONDS };

const EnrolmentMethodSchema = Type.Union([Type.Literal('link'), Type.Literal('email'), Type.Literal('code'), Type.Literal('cli')]);
/** How a link or code reached the person: shown to agents, kept in the audit trail. */
export type EnrolmentMethod = Static<typeof EnrolmentMethodSchema>;

/** What an invite (link) or enrolment code flow keeps. */
const EnrolmentDataSchema = Type.Object({
  issuedBy: Type.Union([Type.String(), Type.Null()]),
  method: Type.Optional(EnrolmentMethodSchema),
  /** Codes: HMAC of the code. */
  codeHash: Type.Optional(Type.String()),
  /** A redeemed code: the link it opened. A link opened by a code: that code. */
  childId: Type.Optional(Type.String()),
  parentId: Type.Optional(Type.String()),
  /** Why a flow was revoked when it was not by a newer link (e.g. too many wrong tries). */
  revokedReason: Type.Optional(Type.String()),
  templateId: Type.Optional(Type.String()),
  /** What the ceremony must register: 'security-key', an attested AAL3 security key; absent, any passkey the policy allows. */
  requires: Type.Optional(Type.Literal('security-key')),
  /**
   * The link's token or the code, sealed, until the agent who issued it has seen it once on the page after issuing
   * (post/redirect/get: the page is a GET, so reloading it issues nothing); removed when shown.
   */
  reveal: Type.Optional(Type.Object({ sealed: Type.String(), agentId: Type.String(), bindingHash: Type.String() })),
});
export type EnrolmentData = Static<typeof EnrolmentDataSchema>;

// Links and codes share one shape; both types read through it.
const readEnrolmentData = flowDataReader(EnrolmentDataSchema);

/** An invite's or code's data; data that can't be read is issued by no one and carries no code, child or reveal. */
export function enrolmentData(flow: Flow): EnrolmentData {
  return readEnrolmentData(flow.data) ?? { issuedBy: null };
}

export interface IssuedInvite {
  url: string;
  token: string;
  expiresAt: number;
  flowId: string;
}

export interface IssueOptions {
  issuedBy?: string | null;
  method?: EnrolmentMethod;
  /** Default: config.inviteSeconds (CLI); agents' links use config.agentLinkSeconds. */
  lifetimeSeconds?: number;
  /** Only this browser may use the link (a link opened by a redeemed code). */
  bindingHash?: string | null;
  parentId?: string;
  templateId?: string;
  /** Revoke the person's earlier links and codes (default true). */
  revokeEarlier?: boolean;
  /** What the link or code registers (EnrolmentData.requires). */
  requires?: 'security-key';
  /** Keep the link's token sealed on its record for the one showing to this agent (see {@link RevealTo}). */
  revealTo?: RevealTo;
  /** More writes that belong to the issue (its audit record): in the same transaction, so all land or none. */
  alongside?: (tx: Store, flowId: string) => Promise<void>;
}

/**
 * Who may see a just-issued link or code once, and how to seal it (under the flow's id). Sealed into the flow's data
 * as it is inserted, so there is no moment when the earlier link is revoked and the new one cannot be shown.
 */
export interface RevealTo {
  agentId: string;
  bindingHash: string;
  seal: (value: string, flowId: string) => string;
}

function sealReveal(revealTo: RevealTo | undefined, value: string, flowId: string): Pick<EnrolmentData, 'reveal'> {
  return revealTo ? { reveal: { sealed: revealTo.seal(value, flowId), agentId: revealTo.agentId, bindingHash: revealTo.bindingHash } } : {};
}

/** Issue a new link for `user`; by default their earlier links and codes stop working (one outstanding per person). */
export async function issueInvite(store: Store, config: Config, user: User, now: number, options: IssueOptions = {}): Promise<IssuedInvite> {
  const token = randomToken(32);
  const flowId = randomToken(16);
  const expiresAt = now + (options.lifetimeSeconds ?? config.inviteSeconds) * 1000;
  const data: EnrolmentData = {
    issuedBy: options.issuedBy ?? null,
    method: options.method ?? 'link',
    parentId: options.parentId,
    templateId: options.templateId,
    ...(options.requires ? { requires: options.requires } : {}),
    ...sealReveal(options.revealTo, token, flowId),
  };
  await store.transaction(async (tx) => {
    if (options.revokeEarlier !== false) await tx.flows.revokeActiveForUser(user.id, ENROLMENT_FLOWS, now);
    await tx.flows.insert({
      id: flowId,
      type: INVITE_FLOW,
      binding_hash: options.bindingHash ?? null,
      user_id: user.id,
      lookup: hashToken(token),
      data: JSON.stringify(data),
      created_at: now,
      expires_at: expiresAt,
    });
    await options.alongside?.(tx, flowId);
  });
  return { url: `${config.origin}/enrol/${token}`, token, expiresAt, flowId };
}

/** The invite a token names, if this browser can still use it; otherwise the error page that explains why. */
export async function loadUsableInvite(store: Store, token: string, now: number, bindingHash?: string): Promise<Flow> {
  const flow = await findInvite(store, token);
  if (!flow) throw appError('invite_invalid');
  // A link opened by a code works only in the browser that redeemed the code.
  if (flow.binding_hash && bindingHash !== undefined && flow.binding_hash !== bindingHash) throw appError('invite_invalid');
  if (flow.state === 'consumed') throw appError('invite_used');
  if (flow.state === 'revoked') throw appError('invite_revoked');
  if (flow.expires_at <= now) throw appError('invite_expired');
  return flow;
}

/** The invite flow a link token names, whatever its state. */
export async function findInvite(store: Store, token: string): Promise<Flow | undefined> {
  if (!TOKEN_PATTERN.test(token)) return undefined;
  const flow = await store.flows.findByLookup(hashToken(token));
  return flow && flow.type === INVITE_FLOW && flow.user_id ? flow : undefined;
}

// ------------------------------------------------------------------ codes

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
export const CODE_LENGTH = 9;

/** 9 Crockford base32 characters: 45 random bits (32 divides 256, so every character is uniform). */
export function generateCode(): string {
  return Array.from(randomBytes(CODE_LENGTH), (b) => CROCKFORD[b % 32]).join('');
}

/** How a code is shown and read out: three groups of three. */
export function formatCode(code: string): string {
  return code.match(/.{1,3}/g)!.join('-');
}

/** Crockford decoding: case-insensitive, hyphens and spaces ignored, I/L read as 1 and O as 0. */
export function normaliseCode(raw: string): string {
  return raw.toUpperCase().replace(/[\s-]+/g, '').replace(/[IL]/g, '1').replace(/O/g, '0');
}

export function isWellFormedCode(code: string): boolean {
  return code.length === CODE_LENGTH && [...code].every((c) => CROCKFORD.includes(c));
}

function codeHash(secret: string, code: string): string {
  return hmac(secret, `enrolment-code:${code}`);
}

export interface IssuedCode {
  code: string;
  flowId: string;
  expiresAt: number;
}

/** Issue a code for `user`, revoking their earlier links and codes; `options` as for {@link issueInvite}. */
export async function issueCode(
  store: Store,
  config: Config,
  secret: string,
  user: User,
  now: number,
  issuedBy: string | null,
  options: Pick<IssueOptions, 'revealTo' | 'alongside' | 'requires'> = {},
): Promise<IssuedCode> {
  const code = generateCode();
  const flowId = randomToken(16);
  const expiresAt = now + config.enrolmentCodeSeconds * 1000;
  const data: EnrolmentData = {
    issuedBy,
    method: 'code',
    codeHash: codeHash(secret, code),
    ...(options.requires ? { requires: options.requires } : {}),
    ...sealReveal(options.revealTo, code, flowId),
  };
  await store.transaction(async (tx) => {
    await tx.flows.revokeActiveForUser(user.id, ENROLMENT_FLOWS, now);
    await tx.flows.insert({
      id: flowId,
      type: CODE_FLOW,
      binding_hash: null,
      user_id: user.id,
      lookup: `code:${flowId}`,
      data: JSON.stringify(data),
      created_at: now,
      expires_at: expiresAt,
    });
    await options.alongside?.(tx, flowId);
  });
  return { code, flowId, expiresAt };
}

/**
 * Redeem email + code. Every way of getting it wrong — unknown email, no code
 * outstanding, wrong code — is the same `enrolment_code_invalid`, and a wrong
 * code counts against the person's outstanding code. Only someone holding the
 * right code learns that it expired, was used or was revoked.
 * On success the code is consumed (exactly one of any concurrent redemptions)
 * and a link bound to this browser is returned.
 */
export async function redeemCode(
  store: Store,
  config: Config,
  secret: string,
  input: { email: string; code: string; bindingHash: string },
  now: number,
): Promise<IssuedInvite> {
  const code = normaliseCode(input.code);
  const user = await store.users.findByEmail(input.email);
  const recent = user ? await store.flows.listForUser(user.id, [CODE_FLOW], 5) : [];
  const wellFormed = isWellFormedCode(code);
  const hash = codeHash(secret, wellFormed ? code : 'x');
  const match = wellFormed ? recent.find((f) => safeEqual(enrolmentData(f).codeHash ?? '', hash)) : undefined;
  if (!match) {
    const outstanding = recent.find((f) => f.state === 'active' && f.expires_at > now);
    if (outstanding) await store.flows.recordFailedAttempt(outstanding.id, CODE_MAX_ATTEMPTS, now);
    throw appError('enrolment_code_invalid');
  }
  if (match.state === 'consumed') throw appError('enrolment_code_used');
  if (match.state === 'revoked') throw appError('enrolment_code_revoked');
  if (match.expires_at <= now) throw appError('enrolment_code_expired', enrolmentCodeExpiredMessage(config.enrolmentCodeSeconds));
  if (!(await store.flows.consume(match.id, now))) throw appError('enrolment_code_used');
  const data = enrolmentData(match);
  const invite = await issueInvite(store, config, user!, now, {
    issuedBy: data.issuedBy,
    method: 'code',
    lifetimeSeconds: REDEEMED_CODE_LINK_SECONDS,
    bindingHash: input.bindingHash,
    parentId: match.id,
    revokeEarlier: false,
    // The link a code opens registers what the code was issued for.
    ...(data.requires ? { requires: data.requires } : {}),
  });
  await store.flows.updateData(match.id, JSON.stringify({ ...data, childId: invite.flowId }));
  return invite;
}

// ------------------------------------------------------------------ status

export type EnrolmentStatus = 'pending' | 'enrolled' | 'expired' | 'revoked';

export const enrolmentStatusLabels: Record<EnrolmentStatus, string> = {
  pending: 'Pending',
  enrolled: 'Enrolled',
  expired: 'Expired',
  revoked: 'Revoked',
};

/**
 * What an agent sees for a link or code they issued. A code that was redeemed
 * is as far along as the link it opened.
 */
export function enrolmentStatus(flow: Flow, child: Flow | undefined, now: number): EnrolmentStatus {
  if (flow.type === CODE_FLOW && flow.state === 'consumed') return child ? enrolmentStatus(child, undefined, now) : 'pending';
  if (flow.state === 'consumed') return 'enrolled';
  if (flow.state === 'revoked') return 'revoked';
  return flow.expires_at <= now ? 'expired' : 'pending';
}

/** The status of one issued link or code, reading the link a redeemed code opened. */
export async function loadEnrolmentStatus(store: Store, flow: Flow, now: number): Promise<EnrolmentStatus> {
  const childId = enrolmentData(flow).childId;
  const child = childId ? await store.flows.findById(childId) : undefined;
  return enrolmentStatus(flow, child, now);
}
