/**
 * API tokens in the console (RA Managers): the list, making one (shown once, to the browser that made it), and
 * revoking one. Making and revoking share one function each with `latchkey api-tokens` (src/api/apiTokens.ts), so the
 * token, its limits and its audit record are the same whichever made it.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { audit } from '../../audit.js';
import { appError, type FieldError } from '../../errors.js';
import { hashToken, randomToken } from '../../crypto.js';
import type { ApiToken } from '../../db/schema.js';
import type { Store } from '../../db/store.js';
import { html } from '../../http/replies.js';
import { Csrf, CsrfBody, Id } from '../../http/schemas.js';
import { renderPage } from '../../views/render.js';
import {
  API_TOKEN_DEFAULT_DAYS,
  apiTokenStatus,
  checkApiTokenDays,
  checkApiTokenName,
  issueApiToken,
  revokeApiToken,
  type ApiTokenAuditWriter,
} from '../../api/apiTokens.js';
import { agentOf } from '../guard.js';
import { isRole, ROLES } from '../roles.js';
import { ApiTokenCreatedPage, ApiTokensPage, NewApiTokenPage, RevokeApiTokenPage, type ApiTokenListItem, type NewApiTokenValues } from '../apiTokenPages.js';
import { adminContext as ctx } from './shared.js';

const permission = 'api_tokens.manage';
const TokenParams = Type.Object({ id: Id });
const NewTokenBody = Type.Object({
  ...Csrf,
  name: Type.Optional(Type.String({ maxLength: 2000 })),
  role: Type.Optional(Type.String({ maxLength: 32 })),
  days: Type.Optional(Type.String({ maxLength: 20 })),
});
const Done = Type.Object({ done: Type.Optional(Type.String({ maxLength: 32 })) });

const flashes: Record<string, string> = {
  revoked: 'The token has been revoked. It stopped working at once.',
  'already-revoked': 'That token was already revoked.',
};

/**
 * The flow that carries a new token, sealed, to the one page that shows it: bound to the browser and agent that made
 * it, consumed by the first load of that page. Minutes, not more: the page is the answer to the form's redirect.
 */
const REVEAL_FLOW = 'api_token_reveal';
const REVEAL_MS = 5 * 60 * 1000;
const revealContext = (tokenId: string) => `api-token-reveal:${tokenId}`;

export async function consoleApiTokensRoutes(app: FastifyInstance) {
  const { store, now, secretBox } = app.latchkey;
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  /** The console's audit records name the agent and where the request came from. */
  const auditFor =
    (request: FastifyRequest): ApiTokenAuditWriter =>
    (tx, record) =>
      audit(app, request, record, tx);

  async function loadToken(id: string): Promise<ApiToken> {
    const token = await store.apiTokens.findById(id);
    if (!token) throw appError('not_found', 'That API token was not found.');
    return token;
  }

  /** Who made each token, by name ("the command line" when no one in the console did). */
  async function listItems(tokens: ApiToken[]): Promise<ApiTokenListItem[]> {
    const makers = new Map<string, string>();
    for (const id of new Set(tokens.map((t) => t.created_by).filter((id): id is string => id !== null))) {
      makers.set(id, (await store.users.findById(id))?.display_name ?? 'A removed user');
    }
    const t = now();
    return tokens.map((token) => ({ token, status: apiTokenStatus(token, t), createdBy: token.created_by === null ? null : makers.get(token.created_by)! }));
  }

  r.get('/admin/api-tokens', { config: { permission }, schema: { querystring: Done } }, async (request, reply) => {
    const items = await listItems(await store.apiTokens.list());
    const flash = request.query.done ? (flashes[request.query.done] ?? null) : null;
    return html(reply, renderPage(<ApiTokensPage {...ctx(request)} items={items} flash={flash} />));
  });

  const blank: NewApiTokenValues = { name: '', role: '', days: String(API_TOKEN_DEFAULT_DAYS) };

  r.get('/admin/api-tokens/new', { config: { permission } }, async (request, reply) => {
    return html(reply, renderPage(<NewApiTokenPage {...ctx(request)} values={blank} errors={[]} />));
  });

  // Post/redirect/get: the answer is a redirect to the page that shows the token once, so a reload makes nothing.
  r.post('/admin/api-tokens/new', { config: { permission }, schema: { body: NewTokenBody } }, async (request, reply) => {
    const values: NewApiTokenValues = { name: request.body.name ?? '', role: request.body.role ?? '', days: (request.body.days ?? '').trim() };
    const errors: FieldError[] = [];
    const nameProblem = checkApiTokenName(values.name);
    if (nameProblem) errors.push({ field: 'name', message: nameProblem });
    const role = values.role;
    if (!isRole(role)) errors.push({ field: `role-${ROLES[0]}`, message: 'Choose the role the token acts with' });
    const days = /^[0-9]{1,4}$/.test(values.days) ? Number(values.days) : NaN;
    const daysProblem = values.days ? checkApiTokenDays(days) : 'Enter how many days the token lasts';
    if (daysProblem) errors.push({ field: 'days', message: daysProblem });
    if (errors.length || !isRole(role)) return html(reply, renderPage(<NewApiTokenPage {...ctx(request)} values={values} errors={errors} />), 400);

    const agent = agentOf(request).user;
    const t = now();
    const { record } = await issueApiToken(store, { name: values.name, role, days, createdBy: agent.id, via: 'console' }, t, {
      audit: auditFor(request),
      // Sealed for its one showing, in the transaction that makes the token: there is no token without it.
      alongside: (tx: Store, made) =>
        tx.flows.insert({
          id: randomToken(16),
          type: REVEAL_FLOW,
          binding_hash: request.bindingHash,
          user_id: agent.id,
          lookup: hashToken(revealContext(made.record.id)),
          data: JSON.stringify({ sealed: secretBox.seal(made.token, revealContext(made.record.id)) }),
          created_at: t,
          expires_at: t + REVEAL_MS,
        }),
    });
    return reply.redirect(`/admin/api-tokens/${record.id}/created`, 303);
  });

  /**
   * The new token, once: to the agent who made it, in the browser they made it from, on the first load. Taking it
   * consumes its flow in one conditional update (of two loads only one shows it) and drops the sealed copy.
   */
  r.get('/admin/api-tokens/:id/created', { config: { permission }, schema: { params: TokenParams } }, async (request, reply) => {
    const token = await loadToken(request.params.id);
    const flow = await store.flows.consumeByLookup(hashToken(revealContext(token.id)), REVEAL_FLOW, request.bindingHash, now());
    let value: string | undefined;
    if (flow) {
      await store.flows.updateData(flow.id, '{}');
      if (flow.user_id === agentOf(request).user.id) value = secretBox.open((JSON.parse(flow.data) as { sealed: string }).sealed, revealContext(token.id));
    }
    return html(reply, renderPage(<ApiTokenCreatedPage {...ctx(request)} token={token} value={value} />));
  });

  r.get('/admin/api-tokens/:id/revoke', { config: { permission }, schema: { params: TokenParams } }, async (request, reply) => {
    const token = await loadToken(request.params.id);
    if (token.revoked_at !== null) return reply.redirect('/admin/api-tokens?done=already-revoked', 303);
    return html(reply, renderPage(<RevokeApiTokenPage {...ctx(request)} token={token} />));
  });

  r.post('/admin/api-tokens/:id/revoke', { config: { permission }, schema: { params: TokenParams, body: CsrfBody } }, async (request, reply) => {
    const revoked = await revokeApiToken(store, request.params.id, now(), { via: 'console', audit: auditFor(request) });
    if (revoked === undefined) throw appError('not_found', 'That API token was not found.');
    return reply.redirect(`/admin/api-tokens?done=${revoked === 'already' ? 'already-revoked' : 'revoked'}`, 303);
  });
}
