import type { Config } from './config/index.js';
import type { Trust } from './webauthn/trust.js';
import type { Store } from './db/store.js';
import type { RequestContext, WebAuthn } from './webauthn/ceremonies.js';
import type { Mailer } from './mail/mailer.js';
import type { SecretBox } from './secretBox.js';
import type { Captcha } from './captcha/captcha.js';
import type { LinkedAccounts } from './strategies/linkedAccount/linkedAccounts.js';
import type { Session, User } from './db/schema.js';
import type { KindRegistry } from './strategies/kindRegistry.js';
import type { Metrics } from './metrics/metrics.js';

/** What every route can reach: `app.latchkey`. */
export interface Latchkey {
  config: Config;
  store: Store;
  webauthn: WebAuthn;
  mailer: Mailer;
  /** Encryption at rest for secrets read back later (TOTP). */
  secretBox: SecretBox;
  captcha: Captcha;
  /** The kinds of authenticator (src/strategies/authenticatorKind.ts) and the one assurance function. */
  kinds: KindRegistry;
  /** The FIDO metadata and the authenticator policy in force (src/webauthn/trust.ts). */
  trust: Trust;
  /** The linked-account strategy (upstream OpenID Connect providers; none configured: every provider id is unknown). */
  linkedAccounts: LinkedAccounts;
  /** Server secret for HMACs (CSRF tokens, enumeration-safe fake credentials); generated once, kept in the database. */
  secret: string;
  now: () => number;
  /** Requests per minute per IP on unauthenticated ceremony endpoints (0: off). */
  rateLimitPerMinute: number;
  /** Counters for /metrics (src/metrics/metrics.ts): flows record ceremonies with it; does nothing when metrics are off. */
  metrics: Metrics;
}

export interface SignedIn {
  session: Session;
  user: User;
}

declare module 'fastify' {
  interface FastifyInstance {
    latchkey: Latchkey;
  }
  interface FastifyRequest {
    /**
     * Hash of this browser's binding cookie: ceremonies are bound to it. Worked out on first read, which gives a
     * browser without the cookie a new one on this answer (plugins/sessions.ts); a getter, not to be assigned.
     */
    readonly bindingHash: string;
    /** The CSRF token for this browser's binding (forms' `_csrf`, the `x-csrf-token` header); a getter, as bindingHash. */
    readonly csrfToken: string;
    auth: SignedIn | null;
    /** IP and user agent, read when the request arrived (plugins/sessions.ts requestContext). */
    client: RequestContext | null;
  }
}
