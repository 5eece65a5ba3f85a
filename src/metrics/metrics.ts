/**
 * What an operator watches (issue 16): counters and histograms for `/metrics` in the Prometheus text format, made
 * with prom-client in a registry of this app's own (tests build many apps in one process; the global default
 * registry would mix their counts and refuse a second metric of the same name).
 *
 * Recording sits on the sign-in path (about 2,000 ceremonies a second on a 2-core host), so each recorder adds to plain
 * numbers found by label values (`ScrapedMetric`): no label object, no hashing, no async work per call; prom-client
 * reads them, with its own default metrics, only when /metrics is scraped.
 * With metrics off (LATCHKEY_METRICS_PORT unset) flows get {@link NO_METRICS}, whose recorders do nothing.
 */
import { createRequire } from 'node:module';
import type { Metric, Registry } from 'prom-client';

let promClientModule: typeof import('prom-client') | undefined;
/**
 * prom-client, loaded when the first PrometheusMetrics is made (metrics on), not at start: about 1.3 MiB of heap that a
 * server without metrics never needs. It is CommonJS, so require() loads it synchronously.
 */
const promClient = () => (promClientModule ??= createRequire(import.meta.url)('prom-client') as typeof import('prom-client'));

/** The ceremonies counted, by what the person was doing. */
export type CeremonyFlow = 'signin' | 'signup' | 'enrolment' | 'reauth' | 'self_service';

/** How they did it: an authenticator kind's type (passkey, totp, password, linked-account …) or one of these. */
export type CeremonyMethod = 'passkey' | 'password' | 'password_totp' | 'linked_account' | 'security_key' | (string & {});

/**
 * Why a ceremony failed, a small fixed set (each failure code of the error registry maps to one, `failureReason`):
 * a dashboard can show every series, and a new error code never adds one.
 */
export const FAILURE_REASONS = ['challenge', 'credential', 'user_verification', 'account', 'authenticator_policy', 'counter_regressed', 'wrong_secret', 'throttled', 'upstream', 'other'] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];
export type CeremonyOutcome = 'success' | FailureReason;

const REASON_OF_CODE: Record<string, FailureReason> = {
  challenge_invalid: 'challenge',
  flow_expired: 'challenge',
  interaction_expired: 'challenge',
  ceremony_failed: 'credential',
  credential_unknown: 'credential',
  credential_exists: 'credential',
  user_verification_required: 'user_verification',
  account_disabled: 'account',
  account_locked: 'account',
  user_suspended: 'account',
  authenticator_not_allowed: 'authenticator_policy',
  authenticator_compromised: 'authenticator_policy',
  counter_regressed: 'counter_regressed',
  signin_failed: 'wrong_secret',
  email_code_invalid: 'wrong_secret',
  signin_throttled: 'throttled',
  too_many_requests: 'throttled',
  self_service_limited: 'throttled',
  upstream_failed: 'upstream',
  upstream_unavailable: 'upstream',
  linked_account_unknown: 'upstream',
  reauth_linked_account_mismatch: 'upstream',
};

/** The reason a failure code (src/errors.ts) is counted under. */
export function failureReason(code: string): FailureReason {
  return REASON_OF_CODE[code] ?? 'other';
}

/** OAuth grant types counted by name; any other is `other` (a client cannot add series by sending new names). */
const GRANT_TYPES = new Set(['authorization_code', 'refresh_token', 'client_credentials', 'urn:ietf:params:oauth:grant-type:device_code', 'urn:openid:params:grant-type:ciba']);
/** OAuth token endpoint error codes (RFC 6749 §5.2) counted by name; any other is `other`. */
const GRANT_ERRORS = new Set(['invalid_grant', 'invalid_client', 'invalid_request', 'unauthorized_client', 'unsupported_grant_type', 'invalid_scope', 'invalid_target', 'server_error']);

export type EnrolmentEvent = 'issued' | 'completed' | 'expired';
/** How an enrolment reached the person: a link shown to an agent, a 9-character code, an email, or the CLI. */
export type EnrolmentMethod = 'link' | 'code' | 'email' | 'cli';

/** The recorders flows call: `app.latchkey.metrics.ceremony('signin', 'passkey', 'success')`. */
export interface Metrics {
  readonly enabled: boolean;
  /** One ceremony finished: succeeded, or failed for a reason of {@link FAILURE_REASONS}. */
  ceremony(flow: CeremonyFlow, method: CeremonyMethod, outcome: CeremonyOutcome): void;
  /** A failed ceremony by its error code (src/errors.ts), counted under its {@link failureReason}. */
  ceremonyFailed(flow: CeremonyFlow, method: CeremonyMethod, code: string): void;
  /** An OAuth token request (oidc-provider's grant.success / grant.error): grant type and `success` or the OAuth error. */
  tokenGrant(grantType: string | undefined, outcome: string): void;
  /** An enrolment link or code issued, completed (a passkey set up from it) or expired unused. */
  enrolment(event: EnrolmentEvent, method: EnrolmentMethod): void;
  /** An unexpected error inside the OpenID Connect provider (oidc-provider's server_error event). */
  oidcServerError(): void;
  /** One HTTP answer: the matched route pattern (never the raw URL), its method and status, and how long it took. */
  httpRequest(route: string | undefined, method: string, status: number, seconds: number): void;
  /** One database commit and how long the COMMIT itself took. */
  commit(seconds: number): void;
  /** Gauges read when /metrics is scraped (challenge-store size, database pool). */
  gauge(name: string, help: string, read: () => number | Promise<number>): void;
  /** The exposition text, in the Prometheus text format. */
  text(): Promise<string>;
  readonly contentType: string;
}

const noop = () => {};

/** Metrics off: every recorder does nothing, so the sign-in path pays one empty call. */
export const NO_METRICS: Metrics = {
  enabled: false,
  ceremony: noop,
  ceremonyFailed: noop,
  tokenGrant: noop,
  enrolment: noop,
  oidcServerError: noop,
  httpRequest: noop,
  commit: noop,
  gauge: noop,
  text: async () => '',
  contentType: 'text/plain; version=0.0.4; charset=utf-8',
};

/** Seconds: 1 ms to 10 s, where sign-in (a few ms) and a slow database or upstream (seconds) both fall in a bucket. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Seconds: a SQLite commit takes tens of microseconds, a PostgreSQL one a round trip. */
const COMMIT_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/**
 * Counts of one label set, kept as plain numbers: a sign-in adds to them with no allocation, no hashing and no call into
 * prom-client (whose `labels(...).observe()` hashes the label object on every call: ~2 µs each, measured on the
 * sign-in path). prom-client reads them only when /metrics is scraped, through {@link ScrapedMetric}.
 */
interface Series {
  readonly labels: Record<string, string>;
  /** Counter: its count. Histogram: observations at or under each bucket's bound, not yet cumulative (one more slot for +Inf). */
  readonly counts: Float64Array;
  sum: number;
}

/**
 * A counter or histogram whose series are looked up by nested maps of label values (built on first use; values come
 * from fixed sets or route patterns, so the maps stay small) and handed to prom-client's registry on scrape in the
 * shape its own metrics have (`get()`), so the exposition text is prom-client's.
 */
class ScrapedMetric {
  readonly aggregator = 'sum';
  private readonly byLabels = new Map<string, Map<string, Map<string, Series>>>();
  private readonly bounds: Float64Array;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'histogram',
    private readonly labelNames: readonly string[],
    buckets: readonly number[] = [],
  ) {
    this.bounds = Float64Array.from(buckets);
    // A metric without labels reads 0 from the start, as prom-client's own do.
    if (labelNames.length === 0) this.of();
  }

  /** The series of these label values (up to three; unused ones are ''). */
  of(a = '', b = '', c = ''): Series {
    let byB = this.byLabels.get(a);
    if (!byB) this.byLabels.set(a, (byB = new Map()));
    let byC = byB.get(b);
    if (!byC) byB.set(b, (byC = new Map()));
    let found = byC.get(c);
    if (!found) {
      const values = [a, b, c];
      const labels: Record<string, string> = {};
      this.labelNames.forEach((n, i) => (labels[n] = values[i]!));
      byC.set(c, (found = { labels, counts: new Float64Array(this.type === 'histogram' ? this.bounds.length + 1 : 1), sum: 0 }));
    }
    return found;
  }

  inc(series: Series): void {
    series.counts[0]! += 1;
  }

  observe(series: Series, value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    series.counts[i]! += 1;
    series.sum += value;
  }

  /** What prom-client's registry asks each metric for when it writes the exposition text. */
  async get() {
    const values: { labels: Record<string, string | number>; value: number; metricName?: string }[] = [];
    for (const byB of this.byLabels.values()) {
      for (const byC of byB.values()) {
        for (const { labels, counts, sum } of byC.values()) {
          if (this.type === 'counter') {
            values.push({ labels, value: counts[0]! });
            continue;
          }
          let cumulative = 0;
          counts.forEach((n, i) => {
            cumulative += n;
            values.push({ labels: { le: i < this.bounds.length ? this.bounds[i]! : '+Inf', ...labels }, value: cumulative, metricName: `${this.name}_bucket` });
          });
          values.push({ labels, value: sum, metricName: `${this.name}_sum` }, { labels, value: cumulative, metricName: `${this.name}_count` });
        }
      }
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.byLabels.clear();
  }
}

type DefaultMetric = (registry: Registry, config: { prefix: string; eventLoopMonitoringPrecision: number }) => void;

/**
 * prom-client's default metrics (its `collectDefaultMetrics` list) but `gc`: that one observes every garbage
 * collection through a PerformanceObserver, the one default metric that costs something on every request rather than
 * on scrape (the largest metrics item in a CPU profile of the sign-in path). Long collections still show in the
 * event-loop delay. Each module is prom-client's own, loaded by its path in the package (metrics.test.ts checks that
 * they are all there, so an upgrade that moves one fails a test, not a scrape).
 */
export const DEFAULT_METRICS_BUT_GC = [
  'processCpuTotal',
  'processStartTime',
  'osMemoryHeap',
  'processOpenFileDescriptors',
  'processMaxFileDescriptors',
  'eventLoopLag',
  'processResources',
  'processHandles',
  'processRequests',
  'heapSizeAndUsed',
  'heapSpacesSizeAndUsed',
  'version',
] as const;

function defaultMetricsButGc(): DefaultMetric[] {
  const load = createRequire(import.meta.url);
  return DEFAULT_METRICS_BUT_GC.map((name) => load(`prom-client/lib/metrics/${name}`) as DefaultMetric);
}

const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'];

/** A gauge read on scrape gives up after this long (Prometheus's default scrape timeout is 10 s). */
const GAUGE_READ_TIMEOUT_MS = 1000;

function withTimeout<T>(value: T | Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('gauge read timed out')), ms);
    timer.unref();
  });
  return Promise.race([Promise.resolve(value), late]).finally(() => clearTimeout(timer));
}

/** The metrics of one app, in a registry of its own. */
export class PrometheusMetrics implements Metrics {
  readonly enabled = true;
  readonly registry: Registry = new (promClient().Registry)();
  private readonly ceremonies = this.scraped('latchkey_ceremonies_total', 'Sign-in, sign-up, enrolment, reauthentication and self-service ceremonies finished, by flow, method and outcome (success or a failure reason).', 'counter', ['flow', 'method', 'outcome']);
  private readonly grants = this.scraped('latchkey_oidc_token_grants_total', 'OAuth token requests at the token endpoint, by grant type and outcome (success or the OAuth error code).', 'counter', ['grant_type', 'outcome']);
  private readonly enrolments = this.scraped('latchkey_enrolments_total', 'Enrolment links and codes issued, completed (a passkey set up from one) and expired unused, by how they were sent (expiries: counted by the instance whose sweep recorded them).', 'counter', ['event', 'method']);
  private readonly oidcErrors = this.scraped('latchkey_oidc_server_errors_total', 'Unexpected errors inside the OpenID Connect provider (answered 500).', 'counter', []);
  private readonly requests = this.scraped('latchkey_http_request_duration_seconds', 'Time to answer HTTP requests on the public listener, by matched route pattern (unmatched: 404s), method and status class.', 'histogram', ['route', 'method', 'status_class'], LATENCY_BUCKETS);
  private readonly commits = this.scraped('latchkey_db_commit_duration_seconds', 'Time the database takes to COMMIT a transaction (SQLite: one per group commit of several sign-ins; PostgreSQL: the round trip).', 'histogram', [], COMMIT_BUCKETS);

  constructor() {
    // prom-client's default metrics but its GC histogram: process CPU, memory, handles, heap spaces and the event-loop
    // delay (latchkey_nodejs_eventloop_lag_*), read on scrape.
    for (const collect of defaultMetricsButGc()) collect(this.registry, { prefix: 'latchkey_', eventLoopMonitoringPrecision: 10 });
  }

  private scraped(name: string, help: string, type: 'counter' | 'histogram', labelNames: string[], buckets?: number[]): ScrapedMetric {
    const metric = new ScrapedMetric(name, help, type, labelNames, buckets);
    // Registered like prom-client's own metrics: the registry calls get() when it writes the text.
    this.registry.registerMetric(metric as unknown as Metric);
    return metric;
  }

  ceremony(flow: CeremonyFlow, method: CeremonyMethod, outcome: CeremonyOutcome): void {
    this.ceremonies.inc(this.ceremonies.of(flow, method, outcome));
  }

  ceremonyFailed(flow: CeremonyFlow, method: CeremonyMethod, code: string): void {
    this.ceremonies.inc(this.ceremonies.of(flow, method, failureReason(code)));
  }

  tokenGrant(grantType: string | undefined, outcome: string): void {
    const type = grantType && GRANT_TYPES.has(grantType) ? grantType : 'other';
    this.grants.inc(this.grants.of(type, outcome === 'success' || GRANT_ERRORS.has(outcome) ? outcome : 'other'));
  }

  enrolment(event: EnrolmentEvent, method: EnrolmentMethod): void {
    this.enrolments.inc(this.enrolments.of(event, method));
  }

  oidcServerError(): void {
    this.oidcErrors.inc(this.oidcErrors.of());
  }

  httpRequest(route: string | undefined, method: string, status: number, seconds: number): void {
    this.requests.observe(this.requests.of(route ?? 'unmatched', method, STATUS_CLASSES[Math.floor(status / 100) - 1] ?? 'other'), seconds);
  }

  commit(seconds: number): void {
    this.commits.observe(this.commits.of(), seconds);
  }

  gauge(name: string, help: string, read: () => number | Promise<number>): void {
    new (promClient().Gauge)({
      name,
      help,
      registers: [this.registry],
      // A read that fails or hangs (a database or Redis in trouble) keeps the last value: it never fails the scrape,
      // whose other metrics (the pool, the event loop) matter most then.
      async collect() {
        try {
          this.set(await withTimeout(read(), GAUGE_READ_TIMEOUT_MS));
        } catch {
          // The last value stands.
        }
      },
    });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** A route's onError hook counting the failures of the ceremony it finishes (by the error's code, see {@link failureReason}). */
export function countFailures(metrics: Metrics, flow: CeremonyFlow, method: CeremonyMethod) {
  return async (_request: unknown, _reply: unknown, error: { code?: unknown }): Promise<void> => {
    metrics.ceremonyFailed(flow, method, typeof error.code === 'string' ? error.code : 'internal');
  };
}
