/**
 * oidc-provider's storage adapter over Kysely: every model kind in the one
 * `oidc_models` table (db/persisters/oidcModels.ts), except `Client`, which is
 * read from `services` (a service is an OpenID Connect client).
 */
import { errors, type Adapter, type AdapterPayload, type AllClientMetadata } from 'oidc-provider';
import type { Service } from '../db/schema.js';
import type { Store } from '../db/store.js';
import type { SecretBox } from '../secretBox.js';
import type { SigningAlg } from './signingKeys.js';

/** Client metadata Latchkey adds to the standard set (declared in the provider's extraClientMetadata). */
export const SERVICE_AAL = 'latchkey_aal';
export const SERVICE_FIRST_PARTY = 'latchkey_first_party';

/** A service as oidc-provider's client metadata: code flow only, PKCE enforced by the provider for every client. */
export function clientMetadata(service: Service, secretBox: SecretBox): AllClientMetadata {
  const confidential = service.client_type === 'confidential';
  return {
    client_id: service.client_id,
    client_name: service.name,
    ...(confidential && service.client_secret ? { client_secret: secretBox.open(service.client_secret, `service-secret:${service.client_id}`) } : {}),
    redirect_uris: JSON.parse(service.redirect_uris) as string[],
    post_logout_redirect_uris: JSON.parse(service.post_logout_redirect_uris) as string[],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: confidential ? 'client_secret_basic' : 'none',
    id_token_signed_response_alg: service.id_token_alg as SigningAlg,
    application_type: 'web',
    [SERVICE_AAL]: service.aal,
    [SERVICE_FIRST_PARTY]: service.first_party === 1,
  };
}

/** What oidc-provider calls the models a token request spends, in its own error descriptions. */
const CONSUMED_NAMES: Record<string, string> = { AuthorizationCode: 'authorization code', RefreshToken: 'refresh token' };

/** Whether two rows of `services` have the same value in every column. */
function isSameRow(a: Service, b: Service): boolean {
  for (const key of Object.keys(a) as (keyof Service)[]) if (a[key] !== b[key]) return false;
  return Object.keys(a).length === Object.keys(b).length;
}

/**
 * Services kept as metadata (Client only): beyond this many, the least recently found is built again when next found.
 * oidc-provider keeps as many built clients (secrets included) in its own cache.
 */
const CLIENTS_KEPT = 100;

export class KyselyAdapter implements Adapter {
  /**
   * Client only: each service's metadata as last built, with the row it was built from. The row is read on every
   * find, so a change (a new secret, a removed redirect URI) applies at once, on every instance; only a row unchanged
   * since is not opened and parsed again (its sealed secret is an AES-GCM open; BENCHMARKS.md, token endpoint).
   * Frozen, as it is handed to oidc-provider on every find.
   */
  private readonly clients = new Map<string, { service: Service; metadata: AdapterPayload }>();

  constructor(
    private readonly kind: string,
    private readonly store: Store,
    private readonly secretBox: SecretBox,
    private readonly now: () => number,
    private readonly clientsKept = CLIENTS_KEPT,
  ) {}

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    if (this.kind === 'Client') throw new Error('services are added with `latchkey services add`, not through the provider');
    await this.write((store) => store.oidcModels.upsert({
      kind: this.kind,
      id,
      payload: JSON.stringify(payload),
      grantId: payload.grantId ?? null,
      userCode: payload.userCode ?? null,
      uid: payload.uid ?? null,
      expiresAt: expiresIn ? this.now() + expiresIn * 1000 : null,
    }));
  }

  /**
   * One statement's write. SQLite: writes of grants running at once share one commit (src/db/groupCommit.ts); each
   * token grant writes two or three rows. PostgreSQL: the statement alone, which shares its commit with the turn's
   * other such writes on the shared connection (DURABLE_WRITE in src/db/persisters/oidcModels.ts); in a transaction
   * of its own it would take a pooled connection, a BEGIN and a COMMIT.
   */
  private write<T>(fn: (store: Store) => Promise<T>): Promise<T> {
    return this.store.groupCommitKind === 'savepoints' ? this.store.transaction(fn, { groupCommit: true, oneStatement: true }) : fn(this.store);
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    // oidc-provider reads its own requests; an id PostgreSQL could not even compare (U+0000) is simply not found.
    if (id.includes('\u0000')) return undefined;
    if (this.kind === 'Client') return this.findClient(id);
    return this.parse(await this.store.oidcModels.find(this.kind, id, this.now()));
  }

  private async findClient(id: string): Promise<AdapterPayload | undefined> {
    const service = await this.store.services.find(id);
    const kept = this.clients.get(id);
    if (!service) {
      this.clients.delete(id);
      return undefined;
    }
    if (kept && isSameRow(kept.service, service)) {
      // Most recently found last, so the first in the map is the one to drop.
      this.clients.delete(id);
      this.clients.set(id, kept);
      return kept.metadata;
    }
    const metadata = deepFreeze(clientMetadata(service, this.secretBox) as AdapterPayload);
    this.clients.delete(id);
    this.clients.set(id, { service, metadata });
    if (this.clients.size > this.clientsKept) this.clients.delete(this.clients.keys().next().value!);
    return metadata;
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    if (uid.includes('\u0000')) return undefined;
    return this.parse(await this.store.oidcModels.findByUid(this.kind, uid, this.now()));
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    if (userCode.includes('\u0000')) return undefined;
    return this.parse(await this.store.oidcModels.findByUserCode(this.kind, userCode, this.now()));
  }

  /**
   * Spend a code or refresh token. oidc-provider refuses a second use by the `consumed` mark it read, which two
   * requests with the same code or token read before either has spent it: the mark is set only where it is not yet
   * (src/db/persisters/oidcModels.ts), and the request that finds it set loses as a second use does: invalid_grant,
   * and the grant revoked, so no token it issued works, the winner's included (RFC 6749 §4.1.2, §10.4; oidc-provider
   * revokes the same way on a second use it sees).
   */
  async consume(id: string): Promise<void> {
    const spent = await this.write((store) => store.oidcModels.consume(this.kind, id, this.now()));
    if (spent) return;
    // A pushed authorization request is used at the authorization endpoint: oidc-provider's own error for a used one.
    if (this.kind === 'PushedAuthorizationRequest') throw new errors.InvalidRequestUri('request_uri is invalid, expired, or was already used');
    // Its grant whatever its expiry (0: as of 1970), revoked in one transaction: the grant's models, then the Grant.
    const grantId = this.parse(await this.store.oidcModels.find(this.kind, id, 0))?.grantId;
    if (typeof grantId === 'string') {
      await this.store.transaction(async (store) => {
        await store.oidcModels.revokeByGrantId(grantId);
        await store.oidcModels.destroy('Grant', grantId);
      });
    }
    throw new errors.InvalidGrant(`${CONSUMED_NAMES[this.kind] ?? this.kind} already consumed`);
  }

  async destroy(id: string): Promise<void> {
    await this.store.oidcModels.destroy(this.kind, id);
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await this.store.oidcModels.revokeByGrantId(grantId);
  }

  private parse(found: { payload: string; consumedAt: number | null } | undefined): AdapterPayload | undefined {
    if (!found) return undefined;
    const payload = JSON.parse(found.payload) as AdapterPayload;
    // oidc-provider reads `consumed` to refuse a second use (and revoke the grant, RFC 6749 §4.1.2).
    return found.consumedAt === null ? payload : { ...payload, consumed: Math.floor(found.consumedAt / 1000) };
  }
}

function deepFreeze<T extends object>(value: T): T {
  for (const inner of Object.values(value)) if (inner && typeof inner === 'object') deepFreeze(inner as object);
  return Object.freeze(value);
}
