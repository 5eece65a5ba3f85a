/**
 * Just enough DER (X.690) to issue X.509 v3 certificates in tests: attestation
 * certificates for "packed" full attestation (§8.2.1), "fido-u2f" and "tpm"
 * (the AIK certificate of §8.3.1: empty subject, TPM directoryName in the
 * subjectAltName, the AIK extended key usage), and the roots that sign them.
 * Keys are ECDSA P-256 unless given (a TPM's AIK is often RSA); the signature
 * is ECDSA or RSA PKCS#1 v1.5 with SHA-256 after the issuer's key. No CRL
 * distribution points, so verifying them never reaches the network.
 */
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';

function der(tag: number, content: Buffer): Buffer {
  const n = content.length;
  let length: Buffer;
  if (n < 0x80) length = Buffer.from([n]);
  else if (n < 0x100) length = Buffer.from([0x81, n]);
  else if (n < 0x10000) length = Buffer.from([0x82, n >> 8, n & 0xff]);
  else throw new Error('DER value too long for this helper');
  return Buffer.concat([Buffer.from([tag]), length, content]);
}

const seq = (...items: Buffer[]) => der(0x30, Buffer.concat(items));
const set = (...items: Buffer[]) => der(0x31, Buffer.concat(items));
const octets = (b: Buffer) => der(0x04, b);
const bits = (b: Buffer) => der(0x03, Buffer.concat([Buffer.from([0]), b]));
const bool = (v: boolean) => der(0x01, Buffer.from([v ? 0xff : 0]));
const explicit = (n: number, b: Buffer) => der(0xa0 + n, b);

function integer(value: Buffer): Buffer {
  let v = value;
  while (v.length > 1 && v[0] === 0 && v[1]! < 0x80) v = v.subarray(1);
  if (v[0]! >= 0x80) v = Buffer.concat([Buffer.from([0]), v]);
  return der(0x02, v);
}

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const bytes = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const chunk = [p & 0x7f];
    for (let rest = Math.floor(p / 128); rest > 0; rest = Math.floor(rest / 128)) chunk.unshift((rest & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return der(0x06, Buffer.from(bytes));
}

function time(d: Date): Buffer {
  const s = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  return d.getUTCFullYear() < 2050 ? der(0x17, Buffer.from(s.slice(2))) : der(0x18, Buffer.from(s));
}

export interface DistinguishedName {
  C?: string;
  O?: string;
  OU?: string;
  /** Absent only for an empty subject (a TPM AIK certificate's, WebAuthn L3 §8.3.1). */
  CN?: string;
}

function name(dn: DistinguishedName): Buffer {
  const rdn = (type: string, value: Buffer) => set(seq(oid(type), value));
  const parts: Buffer[] = [];
  if (dn.C) parts.push(rdn('2.5.4.6', der(0x13, Buffer.from(dn.C))));
  if (dn.O) parts.push(rdn('2.5.4.10', der(0x0c, Buffer.from(dn.O))));
  if (dn.OU) parts.push(rdn('2.5.4.11', der(0x0c, Buffer.from(dn.OU))));
  if (dn.CN) parts.push(rdn('2.5.4.3', der(0x0c, Buffer.from(dn.CN))));
  return seq(...parts);
}

const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));
// sha256WithRSAEncryption takes an explicit NULL parameter (RFC 4055 §5).
const RSA_SHA256 = seq(oid('1.2.840.113549.1.1.11'), Buffer.from([0x05, 0x00]));

/** A name whose attributes each sit in their own RDN, as the TCG EK profile §3.2.9 lays out the TPM's. */
function attributeName(attributes: { type: string; value: string }[]): Buffer {
  return seq(...attributes.map((a) => set(seq(oid(a.type), der(0x0c, Buffer.from(a.value))))));
}

export interface IssuedCertificate {
  der: Buffer;
  privateKey: KeyObject;
  publicKey: KeyObject;
  subject: DistinguishedName;
}

export interface IssueOptions {
  subject: DistinguishedName;
  /** Signs the certificate; absent: self-signed. */
  issuer?: IssuedCertificate;
  ca?: boolean;
  /** id-fido-gen-ce-aaguid (FIDO Key Attestation §4.2.1.2), as 16 bytes. */
  aaguid?: Buffer;
  /** Reuse a key pair (e.g. a fido-u2f attestation key), or bring an RSA one. */
  keys?: { privateKey: KeyObject; publicKey: KeyObject };
  /** subjectAltName with one directoryName of these attributes (a TPM's manufacturer, model and version). */
  subjectAltNameDirectory?: { type: string; value: string }[];
  /** extKeyUsage key purposes, by OID (tcg-kp-AIKCertificate 2.23.133.8.3 for a TPM AIK). */
  extendedKeyUsage?: string[];
  /** cRLDistributionPoints with one URI (RFC 5280 §4.2.1.13): where a verifier would fetch the revocation list. */
  crlDistributionPoint?: string;
}

export function issueCertificate(options: IssueOptions): IssuedCertificate {
  const keys = options.keys ?? generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = keys.publicKey.export({ format: 'der', type: 'spki' });
  const now = Date.now();
  const extensions: Buffer[] = [
    // basicConstraints, critical
    seq(oid('2.5.29.19'), bool(true), octets(options.ca ? seq(bool(true)) : seq())),
    seq(oid('2.5.29.14'), octets(octets(createHash('sha1').update(spki).digest()))),
  ];
  if (options.aaguid) extensions.push(seq(oid('1.3.6.1.4.1.45724.1.1.4'), octets(octets(options.aaguid))));
  if (options.subjectAltNameDirectory) {
    // directoryName is [4], explicit because Name is a CHOICE (RFC 5280 §4.2.1.6). Critical when the subject is
    // empty (RFC 5280 §4.1.2.6), as a TPM AIK certificate's is.
    const empty = !options.subject.C && !options.subject.O && !options.subject.OU && !options.subject.CN;
    const san = seq(explicit(4, attributeName(options.subjectAltNameDirectory)));
    extensions.push(seq(oid('2.5.29.17'), ...(empty ? [bool(true)] : []), octets(san)));
  }
  if (options.crlDistributionPoint) {
    // DistributionPoint { distributionPoint [0] { fullName [0] { uniformResourceIdentifier [6] } } }
    const uri = der(0x86, Buffer.from(options.crlDistributionPoint));
    extensions.push(seq(oid('2.5.29.31'), octets(seq(seq(explicit(0, explicit(0, uri)))))));
  }
  if (options.extendedKeyUsage) extensions.push(seq(oid('2.5.29.37'), octets(seq(...options.extendedKeyUsage.map(oid)))));
  const signingKey = options.issuer?.privateKey ?? keys.privateKey;
  const rsa = signingKey.asymmetricKeyType === 'rsa';
  const algorithm = rsa ? RSA_SHA256 : ECDSA_SHA256;
  const tbs = seq(
    explicit(0, integer(Buffer.from([2]))),
    integer(createHash('sha256').update(spki).update(String(now)).digest().subarray(0, 16)),
    algorithm,
    name(options.issuer?.subject ?? options.subject),
    seq(time(new Date(now - 86_400_000)), time(new Date(now + 10 * 365 * 86_400_000))),
    name(options.subject),
    Buffer.from(spki),
    explicit(3, seq(...extensions)),
  );
  const signature = sign('sha256', tbs, signingKey);
  return { der: seq(tbs, algorithm, bits(signature)), privateKey: keys.privateKey, publicKey: keys.publicKey, subject: options.subject };
}

/** The subject "packed" full attestation requires (WebAuthn L3 §8.2.1). */
export function attestationSubject(cn: string): DistinguishedName {
  return { C: 'US', O: 'Latchkey Test Authenticators', OU: 'Authenticator Attestation', CN: cn };
}
