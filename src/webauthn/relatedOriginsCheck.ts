/**
 * What `latchkey doctor` says about LATCHKEY_RELATED_ORIGINS: the list the browser is given, and a warning when a
 * browser would not accept it. Duplicates and the service's own origin are refused earlier, by loadConfig.
 */
import type { Config } from '../config/index.js';
import { allowedOrigins } from './allowedOrigins.js';

/** Chrome follows at most this many distinct registrable-domain labels in /.well-known/webauthn (WebAuthn L3 §5.11.1's maxLabels). */
export const MAX_RELATED_LABELS = 5;

// Second-level names under which country-code domains are registered (example.co.uk, example.com.au). An
// approximation of the public suffix list, which Latchkey doesn't ship: good enough to count labels for a warning.
const SECOND_LEVEL_SUFFIXES = new Set(['co', 'com', 'org', 'net', 'ac', 'gov', 'edu', 'nhs', 'ltd', 'plc', 'ne', 'or', 'go', 'gv']);

/**
 * The label before the public suffix: "example" for login.example.org and for login.example.co.uk. Approximate
 * (see above): a two-letter top-level domain under one of the common second-level names counts as a two-label suffix.
 */
export function registrableLabel(hostname: string): string {
  const labels = hostname.toLowerCase().replace(/\.$/, '').split('.');
  if (labels.length < 2) return labels[0] ?? hostname;
  const tld = labels[labels.length - 1]!;
  const second = labels[labels.length - 2]!;
  const suffixLength = labels.length >= 3 && tld.length === 2 && SECOND_LEVEL_SUFFIXES.has(second) ? 2 : 1;
  return labels[labels.length - 1 - suffixLength]!;
}

export function relatedOriginsReport(config: Pick<Config, 'origin' | 'relatedOrigins'>): { lines: string[]; warnings: string[] } {
  const lines = ['WebAuthn related origins (LATCHKEY_RELATED_ORIGINS)'];
  const warnings: string[] = [];
  if (config.relatedOrigins.length === 0) {
    lines.push('  none: passkeys work on the origin itself only; /.well-known/webauthn is not served');
    return { lines, warnings };
  }
  const { list } = allowedOrigins(config);
  lines.push(`  document               ${config.origin}/.well-known/webauthn`);
  const labels = new Set<string>();
  for (const origin of list) {
    const url = new URL(origin);
    const label = registrableLabel(url.hostname);
    labels.add(label);
    lines.push(`    ${origin}  label "${label}"${origin === config.origin ? '  (this service)' : ''}`);
    if (url.protocol !== 'https:' && origin !== config.origin) warnings.push(`related origin ${origin} is not https: browsers use related origins only over https; for local testing only`);
  }
  lines.push(`  labels                 ${labels.size} of the ${MAX_RELATED_LABELS} browsers accept`);
  if (labels.size > MAX_RELATED_LABELS) {
    warnings.push(
      `LATCHKEY_RELATED_ORIGINS spans ${labels.size} registrable domain labels (${[...labels].join(', ')}): browsers such as Chrome follow only the first ${MAX_RELATED_LABELS}, so passkeys will not work on origins whose label comes later in the list`,
    );
  }
  return { lines, warnings };
}
