/**
 * The one defaults module: every option Latchkey reads from the environment is
 * defined, documented and validated here. `loadConfig()` throws a
 * {@link ConfigError} naming the variable when a value is unusable, so start-up
 * stops with one line instead of a stack trace.
 */
import { existsSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import { isEmailAddress } from '../users/emailAddress.js';
import { DEFAULT_PASSKEY_KEY_CACHE, DEFAULT_SIGNATURE_WORKERS } from '../webauthn/signatureWorker.js';

export type SignupMode = 'open' | 'invite';

/** LATCHKEY_PASSWORD_SIGNIN: whether a password signs in only with an authenticator app, or also on its own. */
export type PasswordSignIn = 'with-app' | 'alone';
export const ACCESS_LOG_MODES = ['all', 'errors', 'off'] as const;
/** Which answered requests the access log writes at `info` (LATCHKEY_ACCESS_LOG). */
export type AccessLogMode = (typeof ACCESS_LOG_MODES)[number];

/** An organisation's OpenID Connect provider that people can link to their profile and sign in with ("linked work account"). */
export interface UpstreamProvider {
  /** Short id from LATCHKEY_UPSTREAM_PROVIDERS (lower-case letters, digits, hyphens); used in URLs such as /signin/linked/<id>. */
  id: string;
  /** Issuer identifier (LATCHKEY_UPSTREAM_<ID>_ISSUER): https, or http for localhost only. Its discovery document is read from <issuer>/.well-known/openid-configuration. */
  issuer: string;
  /** Client id Latchkey was registered with at the provider (LATCHKEY_UPSTREAM_<ID>_CLIENT_ID). Register the redirect URI <origin>/signin/linked/<id>/callback. */
  clientId: string;
  /** Client secret (LATCHKEY_UPSTREAM_<ID>_CLIENT_SECRET, sent with HTTP Basic); unset: a public client relying on PKCE alone. */
  clientSecret: string | undefined;
  /** Name people see, e.g. "NHS.net Connect" (LATCHKEY_UPSTREAM_<ID>_NAME). */
  name: string;
  /** Authentication assurance level a sign-in through this provider reaches (LATCHKEY_UPSTREAM_<ID>_AAL: 1, 2 or 3; default 2). */
  aal: 1 | 2 | 3;
}

export interface Config {
  /** TCP port the HTTP server listens on. */
  port: number;
  /** Interface the HTTP server binds to. */
  host: string;
  /** Public origin people use to reach Latchkey; WebAuthn binds passkeys to its host name (the RP ID). */
  origin: string;
  /** WebAuthn relying-party ID: the origin's host name. */
  rpId: string;
  /**
   * LATCHKEY_RELATED_ORIGINS: other origins (comma-separated, https; http only for localhost or 127.0.0.1) whose
   * pages run passkey ceremonies for this one RP ID, e.g. https://login.example.co.uk when the origin is
   * https://login.example.org. Served at /.well-known/webauthn (WebAuthn L3 §5.11 related origin requests), so the
   * browser lets those pages use the RP ID; Latchkey accepts ceremonies from them (src/webauthn/allowedOrigins.ts).
   * Default: none (the document is not served, only the origin itself is accepted).
   */
  relatedOrigins: string[];
  /** Name shown by the browser and authenticator while creating a passkey. */
  rpName: string;
  /** Database connection: `sqlite:<path>` (default) or `postgres://…`. */
  databaseUrl: string;
  /** `open`: anyone may sign up; `invite`: accounts come from `users add` / `users invite` only. */
  signup: SignupMode;
  /**
   * LATCHKEY_PASSWORD_SIGNIN: `with-app` (the default): a password signs in only together with a code from an
   * authenticator app (AAL2, not phishing-resistant). `alone`: people may also set a password in their settings
   * (after confirming it is them) and sign in with it on its own from "Use your password instead" on /signin: AAL1,
   * `amr` `pwd`, phishable; services registered at AAL2 or above then ask them to confirm it is them with a passkey
   * or an app first (seed 004: "If you do not have a passkey set up on another device, you can use your password
   * instead"). Switching back to `with-app` stops those passwords signing anyone in on their own.
   */
  passwordSignIn: PasswordSignIn;
  /** A session ends after this long without a request (NIST SP 800-63B rev 4 AAL2: 1 hour). */
  sessionIdleSeconds: number;
  /** A session ends this long after sign-in whatever happens (NIST SP 800-63B rev 4 AAL2: 24 hours). */
  sessionMaxSeconds: number;
  /** Adding or removing a passkey needs a passkey check at most this long ago. */
  reauthSeconds: number;
  /**
   * LATCHKEY_PASSKEY_PROMPT_DAYS (default 7; 0 = never ask): after a sign-in with anything but a passkey, someone
   * who has no passkey is offered one (src/flows/passkeyUpgrade): the browser's password manager may save one
   * without a dialog (WebAuthn conditional create), or a "Set up a passkey" page asks. Whoever chooses "Not now" is
   * asked again at a sign-in this many days later; a service waiting for the sign-in is never held up by it.
   * Stored in seconds, as every other duration here; 0 when the offer is off.
   */
  passkeyPromptSeconds: number;
  /** How long an invite (enrolment) link stays valid. */
  inviteSeconds: number;
  /** How long a WebAuthn challenge stays valid. */
  challengeSeconds: number;
  /**
   * LATCHKEY_CHALLENGE_STORE: where WebAuthn challenges wait between options and verify (src/webauthn/challengeStore.ts).
   * `memory` (the default on SQLite): in the server process, no database writes; run one server process per
   * database then. `database` (the default on PostgreSQL): the challenges table, shared by every instance. `redis`:
   * keys in LATCHKEY_REDIS_URL's Redis, shared by every instance, no database write (needs LATCHKEY_REDIS_URL;
   * never the default, also when Redis is configured: BENCHMARKS.md measures it against the challenges table).
   */
  challengeStore: 'memory' | 'database' | 'redis';
  /**
   * LATCHKEY_REDIS_URL: a Redis server every instance shares, `redis://[:password@]host:port[/db]` or `rediss://…`
   * (TLS). When set, the per-IP request limits (LATCHKEY_RATE_LIMIT_PER_MINUTE) are counted there, so N instances
   * allow the limit once, not N times; LATCHKEY_CHALLENGE_STORE=redis keeps WebAuthn challenges there too. While
   * Redis does not answer, limits are not counted (requests pass, a warning is logged): an identity service keeps
   * signing people in. Unset (the default): each instance counts on its own. Its password is never logged.
   */
  redisUrl: string | undefined;
  /**
   * LATCHKEY_REDIS_PREFIX (default `latchkey:`): put before every key Latchkey writes in Redis, so one Redis can
   * serve several deployments (staging and production) without them sharing counters. The same on every instance.
   */
  redisKeyPrefix: string;
  /** Serve the FIDO Alliance conformance endpoints under /fido2 (never in production). */
  fidoConformance: boolean;
  /** Directory of FIDO metadata statements (*.json) trusted in conformance mode (the conformance tool supplies them). */
  fidoMetadataDir: string | undefined;
  /**
   * LATCHKEY_FIDO_METADATA_ROOT: a PEM file of the root certificate(s) a FIDO metadata BLOB must chain to. Default:
   * the file the repository ships (src/webauthn/metadata/fido-mds-root.pem, GlobalSign Root CA - R3, the FIDO
   * Alliance's MDS3 root). Tests, and anyone running their own metadata service, point it at their own root.
   */
  fidoMetadataRoot: string;
  /**
   * LATCHKEY_FIDO_METADATA_SIGNER: the common name (CN) the certificate that signs a FIDO metadata BLOB must have.
   * Default mds.fidoalliance.org, the FIDO Alliance's signing certificate: GlobalSign Root CA - R3 is a public root
   * that issues certificates to many others, so the chain alone doesn't say the FIDO Alliance signed it.
   */
  fidoMetadataSigner: string;
  /**
   * LATCHKEY_FIDO_METADATA_URL: where to download the FIDO metadata BLOB from, e.g. https://mds3.fidoalliance.org/
   * (https; http only on loopback). The server downloads it at start when none is kept or the kept one's nextUpdate
   * has passed, then checks hourly. Default: unset, no download; import it with `latchkey metadata import FILE`.
   */
  fidoMetadataUrl: string | undefined;
  /**
   * LATCHKEY_TRUST_RELOAD_SECONDS (default 30): how often each instance reads the authenticator policy and the FIDO
   * metadata again from the database, so a BLOB imported by the CLI or another instance, or a policy saved on
   * another instance, takes effect everywhere within this time.
   */
  trustReloadSeconds: number;
  /** pino log level. */
  logLevel: string;
  /**
   * LATCHKEY_ACCESS_LOG (default `errors`): which answered requests get an access-log line at `info`
   * (src/http/accessLog.ts): `all`, `errors` (status 400 and above) or `off`. The others are written at `debug`.
   */
  accessLog: AccessLogMode;
  /** Requests per minute per client IP on the unauthenticated sign-in, sign-up and invite endpoints; 0 turns the limit off. */
  rateLimitPerMinute: number;
  /** Trust X-Forwarded-For from this many proxy hops (for client IPs in audit and rate limits behind a reverse proxy). */
  trustProxyHops: number;
  /** Serve cookies with `Secure` and the `__Host-` prefix (true when the origin is https). */
  secureCookies: boolean;
  /** NODE_ENV=production: no development outbox, unsafe settings are warned about. */
  production: boolean;
  /** Organisation named on enrolment pages and in emails (defaults to the RP name). */
  organisation: string;
  /** How long a link or enrolment email issued by a registration-authority agent stays valid. */
  agentLinkSeconds: number;
  /** How long a 9-character enrolment code stays valid (seed 003: 60 seconds). */
  enrolmentCodeSeconds: number;
  /** Outgoing mail server, e.g. `smtp://user:pass@mail.example.org:587` or `smtps://…:465`; unset: development outbox. */
  smtpUrl: string | undefined;
  /** The From address of the emails Latchkey sends. */
  mailFrom: string;
  /** Where mail goes when no SMTP server is configured (not in production); read it at /dev/outbox. */
  outboxDir: string;
  /** LATCHKEY_SECRET_KEY: 32 bytes (base64url) that encrypt TOTP secrets at rest; when unset, read from (or created in) secretKeyFile. */
  secretKey: Buffer | undefined;
  /** LATCHKEY_SECRET_KEY_FILE: where the encryption key lives when LATCHKEY_SECRET_KEY is unset (created with mode 0600). */
  secretKeyFile: string;
  /** Self-service "Add an authenticator": identity checks per IP per hour, and per email address per hour. */
  selfServicePerIpPerHour: number;
  selfServicePerAccountPerHour: number;
  /**
   * Refused and failed requests recorded in the audit log per minute: per person (or per IP address when nobody is
   * signed in) and reason, and in all for each budget (an area, console or enrolment, for signed-in or signed-out
   * sources: anonymous requests never use up what agents' refusals are recorded with). Past either, that minute's
   * others are counted, not written, so a flood of refusals cannot fill the disk; one record then says how many
   * (src/audit.ts).
   */
  auditRefusalsPerSourcePerMinute: number;
  auditRefusalsPerMinute: number;
  /** ALTCHA proof of work: the most hashes a browser tries (higher: slower for people and bots alike). */
  captchaMaxNumber: number;
  /**
   * LATCHKEY_RA_CONTACT_URL: where people find their registration authority, an https URL or a mailto: address.
   * Linked from "Can't use your passkey?" (/signin/help), self-service's problem page, the one-passkey warning in
   * settings and the emails that tell people an authenticator was added by recovery or a model was compromised.
   * Default: unset; those pages then say to contact the registration authority or administrator.
   */
  raContactUrl: string | undefined;
  /** LATCHKEY_NATIONAL_ID_LABEL: what the national identifier is called (default "National Insurance number"). */
  nationalIdLabel: string | undefined;
  /** LATCHKEY_NATIONAL_ID_PATTERN: a regular expression the identifier (upper case, no spaces or hyphens) must match; default: the UK National Insurance number rules. */
  nationalIdPattern: RegExp | undefined;
  /** LATCHKEY_NATIONAL_ID_HINT: where people find it, shown under the field. */
  nationalIdHint: string | undefined;
  /**
   * Upstream OpenID Connect providers for linked work accounts: LATCHKEY_UPSTREAM_PROVIDERS lists their ids
   * (comma-separated), and each id <ID> (upper-cased, hyphens as underscores) has LATCHKEY_UPSTREAM_<ID>_ISSUER,
   * _CLIENT_ID, _CLIENT_SECRET (optional), _NAME and _AAL (optional, default 2). Default: none.
   */
  upstreamProviders: UpstreamProvider[];
  /**
   * The `acr` value an ID token carries for each authentication assurance level (LATCHKEY_OIDC_ACR_AAL1, _AAL2,
   * _AAL3). Defaults follow the US federal convention also used by login.gov:
   * `http://idmanagement.gov/ns/assurance/aal/<n>`. Services may ask for one with `acr_values`.
   */
  oidcAcr: Record<1 | 2 | 3, string>;
  /** Absolute lifetime of a refresh token chain (LATCHKEY_OIDC_REFRESH_TOKEN_HOURS, default 24: NIST SP 800-63B rev 4 AAL2 reauthentication). Rotation never extends it. */
  oidcRefreshTokenSeconds: number;
  /** After `latchkey keys rotate`, how long the previous signing key stays in the JWKS (LATCHKEY_OIDC_KEY_RETIRE_HOURS, default 24; at least the ID token lifetime of 1 hour). */
  oidcKeyRetireSeconds: number;
  /**
   * LATCHKEY_WEBHOOK_RETRY_SECONDS: when each attempt of a webhook delivery is made, in seconds after the previous
   * one failed (the first after the change), comma-separated. Default `0,5,300,1800,7200,18000,36000,36000`: Standard
   * Webhooks' schedule (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), about a day. A delivery whose last
   * attempt fails is marked failed and its endpoint is paused, and the RA Manager who added it is emailed.
   */
  webhookRetrySeconds: number[];
  /**
   * LATCHKEY_WEBHOOK_POLL_SECONDS (default 1): how often this instance looks for webhook deliveries that are due.
   * 0: this instance sends none (others sharing the database do); changes still write their deliveries.
   */
  webhookPollSeconds: number;
  /**
   * LATCHKEY_METRICS_PORT: serve /metrics (Prometheus text format, src/metrics) on this port, on a listener of its
   * own, never the public one; 9464 is the usual choice (the Prometheus exporters' port). 0: any free port (tests).
   * Default: unset, metrics off: nothing is recorded and nothing listens.
   */
  metricsPort: number | undefined;
  /**
   * LATCHKEY_METRICS_HOST (default 127.0.0.1): the interface the metrics listener binds to. Set it (e.g. 0.0.0.0) only
   * where the port is reachable by the Prometheus server and no one else: /metrics has no authentication.
   */
  metricsHost: string;
  /**
   * LATCHKEY_PASSKEY_KEY_CACHE (default 0 = none): public keys the event loop (or each signature worker) keeps
   * imported, least recently used dropped first (src/webauthn/signatureWorker.ts, DEFAULT_PASSKEY_KEY_CACHE). About
   * 2.7 KiB each for P-256. A kept key saves 15–25 µs of CPU when the same passkey signs in again before it is dropped;
   * worth it only where the same people sign in again within minutes and the cache holds them all: a dropped key's
   * memory waits for a full garbage collection, so a cache smaller than the people signing in grows the server's memory.
   */
  passkeyKeyCacheSize: number;
  /**
   * LATCHKEY_SIGNATURE_WORKERS (default 0 = none; at most 16): worker threads that import passkeys' public keys and
   * check their signatures (src/webauthn/signatureWorker.ts). With none, checks run on the event loop: about the same
   * CPU per sign-in as with one worker (BENCHMARKS.md), one thread and its memory fewer, and a process uses one core
   * (run one per core behind a balancer). Workers let one process use more cores, at about 20 MiB more resident.
   */
  signatureWorkers: number;
  /**
   * LATCHKEY_SQLITE_CACHE_MIB (default 4): SQLite's page cache for the server's connection, in MiB (better-sqlite3
   * builds SQLite with 16). Pages it misses come from the operating system's file cache, which holds the database
   * for every process; sign-in touches a handful of index pages per ceremony (BENCHMARKS.md, server memory).
   */
  sqliteCacheMiB: number;
}

export class ConfigError extends Error {
  constructor(readonly variable: string, problem: string) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function readInt(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(name, `expected a whole number, got "${raw}"`);
  const value = Number(raw.trim());
  if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

function readBool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = raw.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return true;
  if (['false', '0', 'no', 'off'].includes(v)) return false;
  throw new ConfigError(name, `expected true or false, got "${raw}"`);
}

function readDirectory(env: Env, name: string): string | undefined {
  const raw = env[name]?.trim();
  if (!raw) return undefined;
  if (!existsSync(raw) || !statSync(raw).isDirectory()) throw new ConfigError(name, `not a directory: "${raw}"`);
  return raw;
}

function readOrigin(env: Env, port: number): { origin: string; rpId: string } {
  const raw = env.LATCHKEY_ORIGIN?.trim() || `http://localhost:${port}`;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError('LATCHKEY_ORIGIN', `not a URL: "${raw}"`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ConfigError('LATCHKEY_ORIGIN', `must start with https:// (or http:// for localhost), got "${raw}"`);
  }
  if (url.pathname !== '/' || url.search || url.hash || url.username || url.password) {
    throw new ConfigError('LATCHKEY_ORIGIN', `must be an origin with no path, query or credentials, got "${raw}"`);
  }
  const host = url.hostname;
  // WebAuthn L3 §5.1.4.1 / §13.4.9: browsers refuse RP IDs that are IP addresses, and plain http except on localhost.
  if (isIP(host.replace(/^\[|\]$/g, ''))) {
    throw new ConfigError('LATCHKEY_ORIGIN', `the host must be a domain name, not an IP address (passkeys are bound to a domain): "${raw}"`);
  }
  if (url.protocol === 'http:' && host !== 'localhost' && !host.endsWith('.localhost')) {
    throw new ConfigError('LATCHKEY_ORIGIN', `browsers allow passkeys over http only on localhost; use https:// for "${host}"`);
  }
  return { origin: url.origin, rpId: host };
}

function readDatabaseUrl(env: Env): string {
  const raw = env.DATABASE_URL?.trim() || 'sqlite:./data/latchkey.db';
  if (raw.startsWith('sqlite:')) {
    if (raw.length === 'sqlite:'.length) throw new ConfigError('DATABASE_URL', 'sqlite: needs a file path, e.g. sqlite:./data/latchkey.db');
    return raw;
  }
  if (raw.startsWith('postgres://') || raw.startsWith('postgresql://')) {
    try {
      new URL(raw);
    } catch {
      throw new ConfigError('DATABASE_URL', 'not a valid postgres:// URL');
    }
    return raw;
  }
  throw new ConfigError('DATABASE_URL', 'must start with sqlite: or postgres://');
}

function readText(env: Env, name: string, fallback: string, max: number): string {
  const value = (env[name] ?? '').trim() || fallback;
  if (value.length > max) throw new ConfigError(name, `at most ${max} characters`);
  return value;
}

/**
 * Where people reach a person (LATCHKEY_RA_CONTACT_URL): a page, https (http only on this machine, as the other URLs),
 * or a `mailto:` address (RFC 6068). Anything else — javascript:, a relative path — would be a link that does
 * nothing or worse.
 */
function readContactUrl(env: Env, name: string): string | undefined {
  const raw = env[name]?.trim();
  if (!raw) return undefined;
  if (/^mailto:/i.test(raw)) {
    let address = '';
    try {
      address = decodeURIComponent(new URL(raw).pathname);
    } catch {
      // refused below
    }
    if (!address.split(',').every((a) => isEmailAddress(a.trim()))) throw new ConfigError(name, `expected mailto: and an email address, like mailto:ra@example.org, got "${raw}"`);
    return raw;
  }
  if (!/^https?:\/\//i.test(raw)) throw new ConfigError(name, `expected an https:// URL or a mailto: address, got "${raw}"`);
  const url = readHttpsUrl(name, raw);
  if (url.username || url.password) throw new ConfigError(name, 'must not carry credentials');
  return url.toString();
}

function readPattern(env: Env, name: string): RegExp | undefined {
  const raw = env[name]?.trim();
  if (!raw) return undefined;
  try {
    // Anchored: the whole identifier must match, not a part of it.
    return new RegExp(`^(?:${raw})$`);
  } catch {
    throw new ConfigError(name, `not a valid regular expression: "${raw}"`);
  }
}

function readSecretKey(env: Env): Buffer | undefined {
  const raw = env.LATCHKEY_SECRET_KEY?.trim();
  if (!raw) return undefined;
  const key = Buffer.from(raw, 'base64url');
  if (key.length !== 32 || !/^[A-Za-z0-9_+/=-]+$/.test(raw)) throw new ConfigError('LATCHKEY_SECRET_KEY', 'must be 32 random bytes in base64url (e.g. openssl rand -base64 32)');
  return key;
}

/**
 * A service's URL from `name`, whose scheme must be one of `schemes` (e.g. ['smtp', 'smtps']); undefined when unset.
 * Messages never repeat the URL, which may carry a password; `example` shows the form expected.
 */
function readServiceUrl(env: Env, name: string, schemes: readonly [string, string], example: string): { raw: string; url: URL } | undefined {
  const raw = env[name]?.trim();
  if (!raw) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(name, `not a URL; expected ${example}`);
  }
  if (!schemes.includes(url.protocol.slice(0, -1))) throw new ConfigError(name, `must start with ${schemes[0]}:// or ${schemes[1]}://, got "${url.protocol}//"`);
  return { raw, url };
}

function readSmtpUrl(env: Env): string | undefined {
  return readServiceUrl(env, 'LATCHKEY_SMTP_URL', ['smtp', 'smtps'], 'smtp://host:port or smtps://host:port')?.raw;
}

const UPSTREAM_ID = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** An https URL (http only on this machine), or a ConfigError naming the option. */
function readHttpsUrl(name: string, raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(name, `not a URL: "${raw}"`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname))) {
    throw new ConfigError(name, `must start with https:// (http:// only for localhost or 127.0.0.1), got "${raw}"`);
  }
  return url;
}

/** LATCHKEY_RELATED_ORIGINS: each an origin, listed once, and none of them the service's own. */
function readRelatedOrigins(env: Env, ownOrigin: string): string[] {
  const name = 'LATCHKEY_RELATED_ORIGINS';
  const list = env[name]?.trim();
  if (!list) return [];
  const seen = new Set<string>();
  return list.split(',').map((item) => {
    const raw = item.trim();
    const url = readHttpsUrl(name, raw);
    // The browser compares clientDataJSON.origin (scheme://host[:port]) exactly; anything more would never match.
    if (url.username || url.password || url.search || url.hash || url.pathname !== '/' || raw.endsWith('/')) {
      throw new ConfigError(name, `each entry must be an origin (scheme://host[:port]) with no path, query, fragment or credentials, got "${raw}"`);
    }
    if (url.origin === ownOrigin) throw new ConfigError(name, `"${raw}" is LATCHKEY_ORIGIN itself; list only the other origins`);
    if (seen.has(url.origin)) throw new ConfigError(name, `"${raw}" is listed twice`);
    seen.add(url.origin);
    return url.origin;
  });
}

function readUpstreamIssuer(env: Env, name: string): string {
  const raw = env[name]?.trim();
  if (!raw) throw new ConfigError(name, 'is required: the provider\'s issuer URL, e.g. https://login.example.org');
  const url = readHttpsUrl(name, raw);
  // OpenID Connect Discovery 1.0 §2: an issuer identifier has no query or fragment.
  if (url.search || url.hash || url.username || url.password) throw new ConfigError(name, `must have no query, fragment or credentials, got "${raw}"`);
  // Kept as written: the ID token's iss must match it exactly.
  return raw;
}

function readUpstreamProviders(env: Env): UpstreamProvider[] {
  const list = env.LATCHKEY_UPSTREAM_PROVIDERS?.trim();
  if (!list) return [];
  const ids = list.split(',').map((id) => id.trim());
  const seen = new Set<string>();
  return ids.map((id) => {
    if (!UPSTREAM_ID.test(id)) {
      throw new ConfigError('LATCHKEY_UPSTREAM_PROVIDERS', `ids are 1 to 32 lower-case letters, digits and hyphens, separated by commas; got "${id}"`);
    }
    if (seen.has(id)) throw new ConfigError('LATCHKEY_UPSTREAM_PROVIDERS', `"${id}" is listed twice`);
    seen.add(id);
    const prefix = `LATCHKEY_UPSTREAM_${id.toUpperCase().replace(/-/g, '_')}`;
    const clientId = env[`${prefix}_CLIENT_ID`]?.trim();
    if (!clientId) throw new ConfigError(`${prefix}_CLIENT_ID`, `is required for upstream provider "${id}"`);
    const name = env[`${prefix}_NAME`]?.trim();
    if (!name) throw new ConfigError(`${prefix}_NAME`, `is required for upstream provider "${id}": the name people see, e.g. "NHS.net Connect"`);
    if (name.length > 64) throw new ConfigError(`${prefix}_NAME`, 'at most 64 characters');
    return {
      id,
      issuer: readUpstreamIssuer(env, `${prefix}_ISSUER`),
      clientId,
      clientSecret: env[`${prefix}_CLIENT_SECRET`]?.trim() || undefined,
      name,
      aal: readInt(env, `${prefix}_AAL`, 2, 1, 3) as 1 | 2 | 3,
    };
  });
}

function readAcr(env: Env, name: string, level: number): string {
  const value = env[name]?.trim() || `http://idmanagement.gov/ns/assurance/aal/${level}`;
  // OpenID Connect Core §2: acr is a string; keep it printable and free of spaces (acr_values is space-separated).
  if (!/^[\x21-\x7e]{1,200}$/.test(value)) throw new ConfigError(name, 'must be 1 to 200 printable characters without spaces (usually a URI)');
  return value;
}

/** The FIDO MDS3 root shipped with Latchkey (LATCHKEY_FIDO_METADATA_ROOT's default). */
export const DEFAULT_FIDO_METADATA_ROOT = fileURLToPath(new URL('../webauthn/metadata/fido-mds-root.pem', import.meta.url));

function readFile(env: Env, name: string, fallback: string): string {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  if (!existsSync(raw) || !statSync(raw).isFile()) throw new ConfigError(name, `not a file: "${raw}"`);
  return raw;
}

function readMetadataUrl(env: Env): string | undefined {
  const name = 'LATCHKEY_FIDO_METADATA_URL';
  const raw = env[name]?.trim();
  if (!raw) return undefined;
  // The BLOB is verified whatever carries it, but https keeps a network attacker from holding back a newer one.
  const url = readHttpsUrl(name, raw);
  if (url.username || url.password) throw new ConfigError(name, 'must not carry credentials');
  return url.toString();
}

/** LATCHKEY_REDIS_URL: redis:// or rediss://; messages never repeat the URL, which may carry a password. */
function readRedisUrl(env: Env): string | undefined {
  const read = readServiceUrl(env, 'LATCHKEY_REDIS_URL', ['redis', 'rediss'], 'redis://host:6379 or rediss://host:6380');
  if (read && !read.url.hostname) throw new ConfigError('LATCHKEY_REDIS_URL', 'needs a host, e.g. redis://127.0.0.1:6379');
  return read?.raw;
}

function readRedisKeyPrefix(env: Env): string {
  const value = env.LATCHKEY_REDIS_PREFIX?.trim() || 'latchkey:';
  if (!/^[\x21-\x7e]{1,64}$/.test(value)) throw new ConfigError('LATCHKEY_REDIS_PREFIX', 'must be 1 to 64 printable characters without spaces, e.g. latchkey:');
  return value;
}

/** Where the secret key lives when neither LATCHKEY_SECRET_KEY nor LATCHKEY_SECRET_KEY_FILE is set: beside the default SQLite database. */
export const DEFAULT_SECRET_KEY_FILE = './data/secret.key';

/** Read and validate the configuration. Pass overrides in tests instead of touching process.env. */
/** Standard Webhooks' suggested retry schedule, in seconds: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h. */
export const STANDARD_WEBHOOK_RETRY_SECONDS = [0, 5, 300, 1800, 7200, 18000, 36000, 36000];

function readRetrySchedule(env: Env, name: string): number[] {
  const raw = env[name]?.trim();
  if (!raw) return STANDARD_WEBHOOK_RETRY_SECONDS;
  const parts = raw.split(',').map((p) => p.trim());
  if (parts.length > 20 || !parts.every((p) => /^\d{1,6}$/.test(p))) {
    throw new ConfigError(name, `expected up to 20 whole numbers of seconds separated by commas (e.g. 0,5,300), got "${raw}"`);
  }
  return parts.map(Number);
}

export function loadConfig(env: Env = process.env): Config {
  const port = readInt(env, 'PORT', 3000, 1, 65535);
  const { origin, rpId } = readOrigin(env, port);
  const signupRaw = (env.LATCHKEY_SIGNUP ?? 'open').trim() || 'open';
  if (signupRaw !== 'open' && signupRaw !== 'invite') {
    throw new ConfigError('LATCHKEY_SIGNUP', `must be "open" or "invite", got "${signupRaw}"`);
  }
  const passwordSignIn = (env.LATCHKEY_PASSWORD_SIGNIN ?? 'with-app').trim() || 'with-app';
  if (passwordSignIn !== 'with-app' && passwordSignIn !== 'alone') {
    throw new ConfigError('LATCHKEY_PASSWORD_SIGNIN', `must be "with-app" or "alone", got "${passwordSignIn}"`);
  }
  const rpName = (env.LATCHKEY_RP_NAME ?? 'Latchkey').trim() || 'Latchkey';
  if (rpName.length > 64) throw new ConfigError('LATCHKEY_RP_NAME', 'at most 64 characters');
  const oidcAcr = {
    1: readAcr(env, 'LATCHKEY_OIDC_ACR_AAL1', 1),
    2: readAcr(env, 'LATCHKEY_OIDC_ACR_AAL2', 2),
    3: readAcr(env, 'LATCHKEY_OIDC_ACR_AAL3', 3),
  };
  // A service reads the level back from acr: two levels with one value could not be told apart.
  if (new Set(Object.values(oidcAcr)).size !== 3) throw new ConfigError('LATCHKEY_OIDC_ACR_AAL1', 'LATCHKEY_OIDC_ACR_AAL1, _AAL2 and _AAL3 must all be different');
  const databaseUrl = readDatabaseUrl(env);
  const challengeStore = (env.LATCHKEY_CHALLENGE_STORE?.trim() || (databaseUrl.startsWith('sqlite:') ? 'memory' : 'database')) as Config['challengeStore'];
  if (challengeStore !== 'memory' && challengeStore !== 'database' && challengeStore !== 'redis') {
    throw new ConfigError('LATCHKEY_CHALLENGE_STORE', `must be "memory", "database" or "redis", got "${challengeStore}"`);
  }
  const redisUrl = readRedisUrl(env);
  if (challengeStore === 'redis' && !redisUrl) throw new ConfigError('LATCHKEY_CHALLENGE_STORE', '"redis" needs LATCHKEY_REDIS_URL');
  const accessLog = (env.LATCHKEY_ACCESS_LOG?.trim() || 'errors') as AccessLogMode;
  if (!ACCESS_LOG_MODES.includes(accessLog)) throw new ConfigError('LATCHKEY_ACCESS_LOG', `must be "all", "errors" or "off", got "${accessLog}"`);
  const logLevel = (env.LOG_LEVEL ?? 'info').trim();
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', `must be one of fatal, error, warn, info, debug, trace, silent; got "${logLevel}"`);
  }
  return {
    port,
    host: (env.HOST ?? '127.0.0.1').trim() || '127.0.0.1',
    origin,
    rpId,
    relatedOrigins: readRelatedOrigins(env, origin),
    rpName,
    databaseUrl,
    signup: signupRaw,
    passwordSignIn,
    sessionIdleSeconds: readInt(env, 'LATCHKEY_SESSION_IDLE_MINUTES', 60, 1, 24 * 60) * 60,
    sessionMaxSeconds: readInt(env, 'LATCHKEY_SESSION_MAX_HOURS', 24, 1, 24 * 30) * 3600,
    reauthSeconds: readInt(env, 'LATCHKEY_REAUTH_MINUTES', 5, 1, 24 * 60) * 60,
    passkeyPromptSeconds: readInt(env, 'LATCHKEY_PASSKEY_PROMPT_DAYS', 7, 0, 365) * 86_400,
    inviteSeconds: readInt(env, 'LATCHKEY_INVITE_HOURS', 72, 1, 24 * 30) * 3600,
    challengeSeconds: 5 * 60,
    challengeStore,
    redisUrl,
    redisKeyPrefix: readRedisKeyPrefix(env),
    fidoConformance: readBool(env, 'LATCHKEY_FIDO_CONFORMANCE', false),
    fidoMetadataDir: readDirectory(env, 'LATCHKEY_FIDO_METADATA_DIR'),
    fidoMetadataRoot: readFile(env, 'LATCHKEY_FIDO_METADATA_ROOT', DEFAULT_FIDO_METADATA_ROOT),
    fidoMetadataSigner: env.LATCHKEY_FIDO_METADATA_SIGNER?.trim() || 'mds.fidoalliance.org',
    fidoMetadataUrl: readMetadataUrl(env),
    trustReloadSeconds: readInt(env, 'LATCHKEY_TRUST_RELOAD_SECONDS', 30, 1, 3600),
    logLevel,
    accessLog,
    rateLimitPerMinute: readInt(env, 'LATCHKEY_RATE_LIMIT_PER_MINUTE', 1000, 0, 1_000_000),
    trustProxyHops: readInt(env, 'LATCHKEY_TRUST_PROXY_HOPS', 0, 0, 10),
    secureCookies: origin.startsWith('https:'),
    production: (env.NODE_ENV ?? '').trim() === 'production',
    organisation: readText(env, 'LATCHKEY_ORGANISATION', rpName, 100),
    agentLinkSeconds: readInt(env, 'LATCHKEY_AGENT_LINK_MINUTES', 30, 1, 30 * 24 * 60) * 60,
    enrolmentCodeSeconds: readInt(env, 'LATCHKEY_ENROLMENT_CODE_SECONDS', 60, 15, 3600),
    smtpUrl: readSmtpUrl(env),
    mailFrom: readText(env, 'LATCHKEY_MAIL_FROM', `${rpName} <no-reply@${rpId}>`, 200),
    outboxDir: (env.LATCHKEY_OUTBOX_DIR ?? '').trim() || './data/outbox',
    secretKey: readSecretKey(env),
    secretKeyFile: (env.LATCHKEY_SECRET_KEY_FILE ?? '').trim() || DEFAULT_SECRET_KEY_FILE,
    selfServicePerIpPerHour: readInt(env, 'LATCHKEY_SELF_SERVICE_PER_IP_PER_HOUR', 30, 1, 1_000_000),
    selfServicePerAccountPerHour: readInt(env, 'LATCHKEY_SELF_SERVICE_PER_ACCOUNT_PER_HOUR', 5, 1, 1000),
    auditRefusalsPerSourcePerMinute: readInt(env, 'LATCHKEY_AUDIT_REFUSALS_PER_SOURCE_PER_MINUTE', 10, 1, 10_000),
    auditRefusalsPerMinute: readInt(env, 'LATCHKEY_AUDIT_REFUSALS_PER_MINUTE', 120, 1, 100_000),
    captchaMaxNumber: readInt(env, 'LATCHKEY_CAPTCHA_MAX_NUMBER', 100_000, 10, 10_000_000),
    raContactUrl: readContactUrl(env, 'LATCHKEY_RA_CONTACT_URL'),
    nationalIdLabel: env.LATCHKEY_NATIONAL_ID_LABEL?.trim() ? readText(env, 'LATCHKEY_NATIONAL_ID_LABEL', '', 60) : undefined,
    nationalIdPattern: readPattern(env, 'LATCHKEY_NATIONAL_ID_PATTERN'),
    nationalIdHint: env.LATCHKEY_NATIONAL_ID_HINT?.trim() ? readText(env, 'LATCHKEY_NATIONAL_ID_HINT', '', 200) : undefined,
    upstreamProviders: readUpstreamProviders(env),
    oidcAcr,
    oidcRefreshTokenSeconds: readInt(env, 'LATCHKEY_OIDC_REFRESH_TOKEN_HOURS', 24, 1, 24 * 365) * 3600,
    oidcKeyRetireSeconds: readInt(env, 'LATCHKEY_OIDC_KEY_RETIRE_HOURS', 24, 1, 24 * 90) * 3600,
    webhookRetrySeconds: readRetrySchedule(env, 'LATCHKEY_WEBHOOK_RETRY_SECONDS'),
    webhookPollSeconds: readInt(env, 'LATCHKEY_WEBHOOK_POLL_SECONDS', 1, 0, 3600),
    metricsPort: env.LATCHKEY_METRICS_PORT?.trim() ? readInt(env, 'LATCHKEY_METRICS_PORT', 0, 0, 65535) : undefined,
    metricsHost: env.LATCHKEY_METRICS_HOST?.trim() || '127.0.0.1',
    passkeyKeyCacheSize: readInt(env, 'LATCHKEY_PASSKEY_KEY_CACHE', DEFAULT_PASSKEY_KEY_CACHE, 0, 10_000_000),
    signatureWorkers: readInt(env, 'LATCHKEY_SIGNATURE_WORKERS', DEFAULT_SIGNATURE_WORKERS, 0, 16),
    sqliteCacheMiB: readInt(env, 'LATCHKEY_SQLITE_CACHE_MIB', 4, 1, 65_536),
  };
}

/** Lines to log at start for settings that are unsafe outside development. */
export function unsafeSettings(config: Config): string[] {
  const warnings: string[] = [];
  if (config.fidoConformance) warnings.push('LATCHKEY_FIDO_CONFORMANCE=true: /fido2 creates users on request; never enable in production');
  if (!config.smtpUrl) {
    warnings.push(
      config.production
        ? 'LATCHKEY_SMTP_URL is not set: Latchkey cannot send email (enrolment emails and notices fail); set it in production'
        : `LATCHKEY_SMTP_URL is not set: emails are written to ${config.outboxDir} and shown at /dev/outbox (development only)`,
    );
  }
  for (const p of config.upstreamProviders) {
    if (p.issuer.startsWith('http:')) warnings.push(`upstream provider "${p.id}" has an http:// issuer (${p.issuer}): for local testing only`);
  }
  if (!config.secureCookies) warnings.push(`LATCHKEY_ORIGIN is ${config.origin}: cookies are not Secure; use https outside local development`);
  if (config.challengeStore === 'memory' && !config.databaseUrl.startsWith('sqlite:')) {
    warnings.push('LATCHKEY_CHALLENGE_STORE=memory with PostgreSQL: a passkey ceremony begun on one instance fails on another; use database when several instances share the database');
  }
  if (config.metricsPort !== undefined && !['127.0.0.1', '::1', 'localhost'].includes(config.metricsHost)) {
    warnings.push(`LATCHKEY_METRICS_HOST=${config.metricsHost}: /metrics has no authentication; let only your Prometheus server reach port ${config.metricsPort}`);
  }
  return warnings;
}
