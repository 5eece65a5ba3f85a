/**
 * Assurance as services ask for it and ID tokens state it: `acr` (a
 * configurable URI per NIST SP 800-63B level) and the rule for what an
 * authorization request needs. What a sign-in is worth — the level and `amr`
 * of each kind of authenticator — is worked out by the kind registry
 * (src/strategies/kindRegistry.ts `assuranceOf`), the one place for it.
 */
import type { Config } from '../config/index.js';
import type { Aal } from '../strategies/authenticatorKind.js';

/** The acr value for a level (configurable: LATCHKEY_OIDC_ACR_AAL1…3). */
export function acrFor(config: Pick<Config, 'oidcAcr'>, aal: Aal): string {
  return config.oidcAcr[aal];
}

/** The level an acr value stands for; undefined for values Latchkey does not issue. */
export function aalOfAcr(config: Pick<Config, 'oidcAcr'>, acr: string | undefined): Aal | undefined {
  if (acr === undefined) return undefined;
  for (const level of [3, 2, 1] as const) if (config.oidcAcr[level] === acr) return level;
  return undefined;
}

export function toAal(n: number): Aal {
  return n >= 3 ? 3 : n >= 2 ? 2 : 1;
}

/** The parts of an authorization request that ask for a level, as oidc-provider keeps them (strings). */
export interface AssuranceRequest {
  acr_values?: unknown;
  /** The OpenID Connect `claims` parameter, JSON (oidc-provider has already checked that it parses). */
  claims?: unknown;
}

/**
 * The level an authorization request needs: a level, or `unknownAcr` when it asks, as essential, only for acr
 * values Latchkey never issues (OpenID Connect Core §5.5.1.1: then no acr can be returned, so nothing satisfies it).
 */
export type Requirement = { aal: Aal; unknownAcr?: undefined } | { aal?: undefined; unknownAcr: string[] };

/**
 * The one rule for what a service's authorization request needs, used by every path (the provider's checks,
 * which decide whether the person sees anything at all, prompt=none included, and the interaction page):
 * the highest of
 * - the service's registered level (`--aal`): a request can ask for more, never less;
 * - `acr_values` (OpenID Connect Core §3.1.2.1): the values are alternatives in order of preference, so the
 *   lowest level among the ones Latchkey issues is what is needed; values it does not know are ignored, as the
 *   parameter is a voluntary request;
 * - an `acr` requested in the `claims` parameter's `id_token` member (§5.5.1), by `value` or `values`, essential
 *   or not, read the same way. An essential one naming no value Latchkey issues can't be met at all.
 *
 * The ID token then carries the level of the sign-in, which is never lower than this and may be higher (a
 * higher NIST SP 800-63B level meets every lower one), so an essential acr is never answered with a lower one.
 */
export function requiredAssurance(config: Pick<Config, 'oidcAcr'>, serviceAal: number, request: AssuranceRequest): Requirement {
  let required = toAal(serviceAal);
  const need = (values: string[]): Aal | undefined => {
    const known = values.map((v) => aalOfAcr(config, v)).filter((a): a is Aal => a !== undefined);
    return known.length ? (Math.min(...known) as Aal) : undefined;
  };
  if (typeof request.acr_values === 'string') {
    const asked = need(request.acr_values.split(' ').filter(Boolean));
    if (asked) required = toAal(Math.max(required, asked));
  }
  const acrClaim = acrClaimOf(request.claims);
  if (acrClaim) {
    const values = [...(typeof acrClaim.value === 'string' ? [acrClaim.value] : []), ...(Array.isArray(acrClaim.values) ? acrClaim.values.filter((v): v is string => typeof v === 'string') : [])];
    const asked = need(values);
    if (asked) required = toAal(Math.max(required, asked));
    else if (acrClaim.essential === true && values.length) return { unknownAcr: values };
  }
  return { aal: required };
}

/** `claims.id_token.acr` of a claims parameter (a JSON string or already parsed), if it asks for one. */
function acrClaimOf(claims: unknown): { essential?: unknown; value?: unknown; values?: unknown } | undefined {
  let parsed = claims;
  if (typeof claims === 'string') {
    try {
      parsed = JSON.parse(claims);
    } catch {
      return undefined;
    }
  }
  const acr = (parsed as { id_token?: { acr?: unknown } } | null | undefined)?.id_token?.acr;
  return acr && typeof acr === 'object' && !Array.isArray(acr) ? (acr as { essential?: unknown; value?: unknown; values?: unknown }) : undefined;
}

/**
 * What happens to a request, given what it needs, the level of the sign-in behind it and the most the person
 * can reach: go on, confirm it is them with something stronger (step-up), or stop on the page that says what the
 * service needs (prompt=none: `unmet_authentication_requirements`).
 */
export function assuranceOutcome(required: Requirement, sessionAal: number, reachable: number): 'enough' | 'step-up' | 'unreachable' {
  if (required.aal === undefined) return 'unreachable';
  if (sessionAal >= required.aal) return 'enough';
  return reachable >= required.aal ? 'step-up' : 'unreachable';
}
