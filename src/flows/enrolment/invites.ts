/**
 * Invite (enrolment) links: a random 256-bit token in the URL, stored only as
 * its SHA-256 in a flow record. The link is consumed by a successful passkey
 * registration, in the same transaction that stores the passkey; a cancelled
 * or failed ceremony leaves it usable until it expires.
 */
import type { Config } from '../../config/index.js';
import { hashToken, randomToken } from '../../crypto.js';
import type { Flow, User } from '../../db/schema.js';
import type { Store } from '../../db/store.js';
import { appError } from '../../errors.js';

export const INVITE_FLOW = 'invite';
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;
/** Used and expired invites are kept this long after expiry so their pages can say why they don't work. */
export const INVITE_RETENTION_MS = 30 * 24 * 3600 * 1000;

export interface IssuedInvite {
  url: string;
  expiresAt: number;
  flowId: string;
}

/** Issue a new link for `user`; their earlier unused links stop working (one live link per person). */
export async function issueInvite(store: Store, config: Config, user: User, now: number, issuedBy: string | null = null): Promise<IssuedInvite> {
  const token = randomToken(32);
  const flowId = randomToken(16);
  const expiresAt = now + config.inviteSeconds * 1000;
  await store.transaction(async (tx) => {
    await tx.flows.revokeActiveForUser(user.id, INVITE_FLOW, now);
    await tx.flows.insert({
      id: flowId,
      type: INVITE_FLOW,
      binding_hash: null,
      user_id: user.id,
      lookup: hashToken(token),
      data: JSON.stringify({ issuedBy }),
      created_at: now,
      expires_at: expiresAt,
    });
  });
  return { url: `${config.origin}/enrol/${token}`, expiresAt, flowId };
}

/** The invite a token names, if it can still be used; otherwise the error page that explains why. */
export async function loadUsableInvite(store: Store, token: string, now: number): Promise<Flow> {
  if (!TOKEN_PATTERN.test(token)) throw appError('invite_invalid');
  const flow = await store.flows.findByLookup(hashToken(token));
  if (!flow || flow.type !== INVITE_FLOW || !flow.user_id) throw appError('invite_invalid');
  if (flow.state === 'consumed') throw appError('invite_used');
  if (flow.state === 'revoked') throw appError('invite_revoked');
  if (flow.expires_at <= now) throw appError('invite_expired');
  return flow;
}
