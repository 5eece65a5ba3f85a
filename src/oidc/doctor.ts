/**
 * `latchkey doctor`: the OpenID Connect provider's configuration as it will
 * run — Latchkey's view of it, then the discovery document oidc-provider
 * actually serves — with a warning for each setting that is unsafe outside
 * development. `serve` logs the same warnings at start.
 */
import { existsSync } from 'node:fs';
import type Provider from 'oidc-provider';
import { DEFAULT_SECRET_KEY_FILE, type Config } from '../config/index.js';
import type { Store } from '../db/store.js';
import { metadataUrlLabel } from '../plugins/trustRefresh.js';
import { OIDC_PREFIX, OIDC_SCOPES, TOKEN_TTL } from './provider.js';
import { DISCOVERY_FIELDS, discoveryWarnings, readDiscovery, resolveDiscovery, type Discovery } from './resolvedConfiguration.js';
import { Trust } from '../webauthn/trust.js';
import { policyInWords } from '../webauthn/policyInWords.js';
import { relatedOriginsReport } from '../webauthn/relatedOriginsCheck.js';

export interface DoctorReport {
  text: string;
  warnings: string[];
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);
const hours = (s: number) => (s % 3600 === 0 ? `${s / 3600} h` : `${Math.round(s / 60)} min`);

export interface DoctorOptions {
  /** The running server's provider; without one, a provider is built the same way just to read its discovery document. */
  provider?: Provider;
}

export async function doctorReport(config: Config, store: Store, now: number, options: DoctorOptions = {}): Promise<DoctorReport> {
  const warnings: string[] = [];
  const lines: string[] = [];
  const keys = await store.signingKeys.listPublished(now);
  const services = await store.services.list();

  lines.push('OpenID Connect provider');
  lines.push(`  issuer                 ${config.origin}`);
  lines.push(`  discovery              ${config.origin}/.well-known/openid-configuration`);
  lines.push(`  endpoints              ${config.origin}${OIDC_PREFIX}/{auth,token,me,jwks,session/end,token/revocation}`);
  lines.push('  response types         code (no implicit or hybrid); grants: authorization_code, refresh_token (no password, no client credentials)');
  lines.push('  PKCE                   required for every client, S256 only');
  lines.push(`  scopes                 ${OIDC_SCOPES.join(' ')}`);
  lines.push(`  acr (AAL1/2/3)         ${config.oidcAcr[1]} | ${config.oidcAcr[2]} | ${config.oidcAcr[3]}`);
  lines.push(`  password sign-in       ${passwordSignInInWords(config)}`);
  lines.push(
    `  lifetimes              code ${TOKEN_TTL.AuthorizationCode} s, access token ${hours(TOKEN_TTL.AccessToken)}, ID token ${hours(TOKEN_TTL.IdToken)}, ` +
      `refresh token ${hours(config.oidcRefreshTokenSeconds)} absolute (rotated on use)`,
  );
  lines.push(`  cookies                ${config.secureCookies ? 'Secure, SameSite=Lax' : 'NOT Secure (http origin), SameSite=Lax'}; signed with a key derived from the server secret`);
  lines.push(`  signing keys           ${keys.length ? '' : 'none yet (one is generated when the server starts)'}`);
  for (const k of keys) {
    lines.push(`    ${k.kid}  ${k.alg}  created ${new Date(k.created_at).toISOString()}  ${k.retires_at === null ? 'signing' : `retired, published until ${new Date(k.retires_at).toISOString()}`}`);
  }
  lines.push(`  key retirement         previous keys stay published ${hours(config.oidcKeyRetireSeconds)} after a rotation`);
  lines.push(`  services               ${services.length}`);
  for (const s of services) {
    const uris = JSON.parse(s.redirect_uris) as string[];
    lines.push(`    ${s.client_id}  ${s.name}  ${s.client_type}  AAL${s.aal}${s.first_party ? '  first-party' : ''}  ${uris.join(' ')}`);
    for (const uri of uris) {
      const url = new URL(uri);
      if (url.protocol === 'http:' && LOOPBACK.has(url.hostname)) warnings.push(`service "${s.name}" has a plain-http loopback redirect URI (${uri}): for development only`);
    }
    if (s.aal < 2) warnings.push(`service "${s.name}" accepts AAL1 sign-ins (${config.passwordSignIn === 'alone' ? 'a password alone or ' : ''}an AAL1 linked account); use --aal 2 unless that is intended`);
  }

  if (config.passwordSignIn === 'alone') {
    warnings.push(
      'LATCHKEY_PASSWORD_SIGNIN=alone: people who set a password can sign in with it on its own, at AAL1 with something phishable; ' +
        'services registered at AAL2 or above ask them for a passkey or an authenticator app first, services at AAL1 let them straight in',
    );
  }

  const origin = new URL(config.origin);
  // An http issuer beyond loopback is warned about below, from the resolved discovery document.
  if (!config.secureCookies && LOOPBACK.has(origin.hostname)) warnings.push(`the issuer ${config.origin} is not https: relying parties must refuse it outside local development`);
  warnings.push(...secretKeyWarnings(config, keys.length > 0 || services.some((s) => s.client_secret !== null)));
  if (config.oidcRefreshTokenSeconds > 30 * 24 * 3600) warnings.push(`refresh tokens last ${hours(config.oidcRefreshTokenSeconds)}: more than 30 days; NIST SP 800-63B rev 4 asks AAL2 sessions to reauthenticate every 24 h`);
  const current = keys.find((k) => k.retires_at === null);
  if (current && now - current.created_at > 365 * 24 * 3600 * 1000) warnings.push(`signing key ${current.kid} is more than a year old: run \`latchkey keys rotate\``);
  if (keys.length && !current) warnings.push('no current signing key: the server makes one at start');

  lines.push('');
  lines.push(...(await fidoMetadataLines(config, store, now, warnings, services)));

  const related = relatedOriginsReport(config);
  lines.push('', ...related.lines);
  warnings.push(...related.warnings);

  lines.push('');
  lines.push('As oidc-provider resolves it (its discovery document)');
  let discovery: Discovery | undefined;
  try {
    discovery = options.provider ? await readDiscovery(options.provider, config.origin) : await resolveDiscovery(config, store, now);
  } catch (err) {
    lines.push(`  could not be read: ${(err as Error).message}`);
    warnings.push(`the provider could not be built or did not serve its discovery document (${(err as Error).message})`);
  }
  if (discovery) {
    const width = Math.max(...DISCOVERY_FIELDS.map((f) => f.length)) + 2;
    for (const field of DISCOVERY_FIELDS) {
      const value = discovery[field];
      if (value === undefined) continue;
      lines.push(`  ${field.padEnd(width)}${Array.isArray(value) ? value.join(' ') : String(value)}`);
    }
    warnings.push(...discoveryWarnings(discovery, config.origin));
  }

  // The policy an RA Manager set in the console (/admin/policy), as every instance reads it from the database.
  const trust = new Trust();
  await trust.reload(store);
  lines.push('');
  lines.push('Authenticator policy (set by an RA Manager at /admin/policy)');
  for (const [label, words] of policyInWords(trust.policy(), trust.metadata())) lines.push(`  ${label.padEnd(23)}${words}`);
  if (trust.policyProblem) warnings.push(trust.policyProblem);

  lines.push('');
  lines.push(warnings.length ? `Warnings (${warnings.length}):` : 'No warnings.');
  for (const w of warnings) lines.push(`  ! ${w}`);
  return { text: lines.join('\n') + '\n', warnings };
}

/** LATCHKEY_PASSWORD_SIGNIN and what it means for the levels people sign in at. */
function passwordSignInInWords(config: Pick<Config, 'passwordSignIn'>): string {
  return config.passwordSignIn === 'alone'
    ? 'alone (LATCHKEY_PASSWORD_SIGNIN): a password signs in on its own at AAL1 (amr pwd, phishable), or with an authenticator app code at AAL2'
    : 'with-app (LATCHKEY_PASSWORD_SIGNIN): a password signs in only with an authenticator app code, at AAL2 (amr pwd otp mfa, not phishing-resistant)';
}

/** The FIDO metadata BLOB in use (what AAL3 rests on): serial, next update, entries, where it came from and when. */
async function fidoMetadataLines(config: Config, store: Store, now: number, warnings: string[], services: readonly { name: string; aal: number }[]): Promise<string[]> {
  const kept = await store.fidoMetadata.summary();
  const lines = ['FIDO metadata (MDS3)'];
  lines.push(`  root                   ${config.fidoMetadataRoot}`);
  lines.push(`  download from          ${config.fidoMetadataUrl ? metadataUrlLabel(config.fidoMetadataUrl) : 'not set (LATCHKEY_FIDO_METADATA_URL): import with latchkey metadata import FILE'}`);
  if (!kept) {
    lines.push('  BLOB                   none loaded: no passkey can reach AAL3 until one is imported');
    // Not a detail then: no one can sign in to such a service, and each person sent there is told to ask their RA for a
    // key the RA can't register either.
    for (const s of services.filter((s) => s.aal >= 3)) {
      warnings.push(
        `service "${s.name}" needs AAL3, but no FIDO metadata is loaded, so no one can sign in to it: ` +
          (config.fidoMetadataUrl ? 'the download from LATCHKEY_FIDO_METADATA_URL has not succeeded yet (see the server log)' : 'import it with `latchkey metadata import FILE` or set LATCHKEY_FIDO_METADATA_URL'),
      );
    }
    return lines;
  }
  lines.push(`  serial                 ${kept.serial}`);
  lines.push(`  next update            ${kept.next_update}`);
  lines.push(`  entries                ${kept.entries}`);
  lines.push(`  source                 ${kept.source}`);
  lines.push(`  imported               ${new Date(kept.imported_at).toISOString()}`);
  if (kept.next_update < new Date(now).toISOString().slice(0, 10)) {
    warnings.push(
      `the FIDO metadata BLOB (serial ${kept.serial}) is stale: its next update was due ${kept.next_update}; ` +
        (config.fidoMetadataUrl ? 'the download from LATCHKEY_FIDO_METADATA_URL is failing (see the server log)' : 'import the current one with `latchkey metadata import FILE`'),
    );
  }
  return lines;
}

/** The key that seals signing keys and service secrets: a copy of the database alone must not be enough to use them. */
function secretKeyWarnings(config: Config, somethingSealed: boolean): string[] {
  if (config.secretKey) return [];
  const warnings: string[] = [];
  if (!existsSync(config.secretKeyFile)) {
    if (somethingSealed) {
      warnings.push(
        `the secret key file ${config.secretKeyFile} is missing: signing keys and service secrets in the database were sealed with a key it held; ` +
          'restore it (a new one would be made at start, and nothing sealed could be opened)',
      );
    }
  } else if (config.secretKeyFile === DEFAULT_SECRET_KEY_FILE) {
    warnings.push(
      `the secret key is in the default file ${DEFAULT_SECRET_KEY_FILE}, beside the default database: a copy of ./data holds both; ` +
        'set LATCHKEY_SECRET_KEY, or LATCHKEY_SECRET_KEY_FILE outside the data directory',
    );
  }
  return warnings;
}
