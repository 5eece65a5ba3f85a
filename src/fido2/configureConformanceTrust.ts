/**
 * Trust settings for a conformance run. The FIDO conformance tool signs its
 * apple, android-key and android-safetynet attestations with its own test
 * roots, not Apple's or Google's, and hands out its metadata statements as
 * JSON files ("Download server metadata"). Nothing here touches the network:
 * statements come from a local directory, and MetadataService is never given
 * an MDS URL.
 *
 * SettingsService and MetadataService are process-wide singletons of
 * @simplewebauthn/server, so this runs only when LATCHKEY_FIDO_CONFORMANCE is
 * on, which is never in production (config warns at start).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MetadataService, SettingsService, type MetadataStatement } from '@simplewebauthn/server';

export interface ConformanceTrustOptions {
  /** Directory of metadata statement JSON files from the conformance tool; none: metadata checks are off. */
  metadataDir?: string;
}

export interface ConformanceTrust {
  statements: number;
}

/** Read every `*.json` metadata statement in `dir`; throws naming the file that is not one. */
export function readMetadataStatements(dir: string): MetadataStatement[] {
  const statements: MetadataStatement[] = [];
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.json')).sort()) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(join(dir, name), 'utf8'));
    } catch (err) {
      throw new Error(`FIDO metadata statement ${name} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (!parsed || typeof parsed !== 'object' || !Array.isArray((parsed as MetadataStatement).attestationRootCertificates)) {
      throw new Error(`FIDO metadata statement ${name} has no attestationRootCertificates`);
    }
    statements.push(parsed as MetadataStatement);
  }
  return statements;
}

export async function configureConformanceTrust(options: ConformanceTrustOptions): Promise<ConformanceTrust> {
  const statements = options.metadataDir ? readMetadataStatements(options.metadataDir) : [];
  // Apple attestation is never checked against metadata by the library, only against these roots:
  // trust the roots the tool's statements name. With none the library skips path validation entirely.
  const roots = [...new Set(statements.flatMap((s) => s.attestationRootCertificates ?? []))];
  SettingsService.setRootCertificates({ identifier: 'apple', certificates: roots });
  // With a statement for the AAGUID the library checks the chain against the statement's roots;
  // without one it would insist on Google's production roots, which the tool's test keys never chain to.
  SettingsService.setRootCertificates({ identifier: 'android-key', certificates: [] });
  SettingsService.setRootCertificates({ identifier: 'android-safetynet', certificates: [] });
  // mdsServers: [] keeps the library from downloading the production MDS blob. With statements,
  // 'strict': an attestation certificate for an AAGUID without a statement is refused, as the tool
  // expects; without, 'permissive' over an empty cache turns metadata checks off (also undoing an
  // earlier call in this process).
  await MetadataService.initialize({ statements, mdsServers: [], verificationMode: statements.length > 0 ? 'strict' : 'permissive' });
  return { statements: statements.filter((s) => s.aaguid).length };
}
