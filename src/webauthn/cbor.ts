/**
 * Just enough CBOR (RFC 8949) decoding for what authenticators send after
 * registration: COSE_Key public keys (RFC 9052 §7) and the extension outputs in
 * authenticator data (WebAuthn L3 §6.1). Strict on purpose: definite lengths
 * only, no tags, no floats, integers within ±2^53, bounded nesting. Anything
 * else is refused with {@link CborError}; the caller fails the ceremony.
 */

export type CborValue = number | string | Uint8Array | boolean | null | undefined | CborValue[] | Map<CborValue, CborValue>;

export class CborError extends Error {
  constructor(message: string) {
    super(`CBOR: ${message}`);
    this.name = 'CborError';
  }
}

const MAX_DEPTH = 16;
const textDecoder = new TextDecoder('utf-8', { fatal: true });

class Reader {
  offset = 0;
  constructor(readonly bytes: Uint8Array) {}

  byte(): number {
    if (this.offset >= this.bytes.length) throw new CborError('unexpected end of data');
    return this.bytes[this.offset++]!;
  }

  take(length: number): Uint8Array {
    if (length > this.bytes.length - this.offset) throw new CborError('unexpected end of data');
    const out = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return out;
  }

  /** The argument of a data item head (RFC 8949 §3): the additional info or the 1, 2, 4 or 8 bytes after it. */
  argument(info: number): number {
    if (info < 24) return info;
    if (info === 24) return this.byte();
    if (info === 25) return (this.byte() << 8) | this.byte();
    if (info === 26) return this.byte() * 2 ** 24 + ((this.byte() << 16) | (this.byte() << 8) | this.byte());
    if (info === 27) {
      const high = this.byte() * 2 ** 24 + ((this.byte() << 16) | (this.byte() << 8) | this.byte());
      const low = this.byte() * 2 ** 24 + ((this.byte() << 16) | (this.byte() << 8) | this.byte());
      if (high >= 2 ** 21) throw new CborError('integer beyond 2^53');
      return high * 2 ** 32 + low;
    }
    // 28–30 are reserved; 31 is an indefinite length, which COSE and CTAP2 canonical CBOR never use.
    throw new CborError(info === 31 ? 'indefinite lengths are not supported' : 'reserved additional information');
  }

  item(depth: number): CborValue {
    if (depth > MAX_DEPTH) throw new CborError('nested too deeply');
    const initial = this.byte();
    const major = initial >> 5;
    const info = initial & 0x1f;
    switch (major) {
      case 0:
        return this.argument(info);
      case 1:
        return -1 - this.argument(info);
      case 2:
        return this.take(this.argument(info));
      case 3:
        try {
          return textDecoder.decode(this.take(this.argument(info)));
        } catch (err) {
          if (err instanceof CborError) throw err;
          throw new CborError('text string is not UTF-8');
        }
      case 4: {
        const length = this.argument(info);
        if (length > this.bytes.length - this.offset) throw new CborError('unexpected end of data');
        const out: CborValue[] = [];
        for (let i = 0; i < length; i++) out.push(this.item(depth + 1));
        return out;
      }
      case 5: {
        const length = this.argument(info);
        if (length * 2 > this.bytes.length - this.offset) throw new CborError('unexpected end of data');
        const out = new Map<CborValue, CborValue>();
        for (let i = 0; i < length; i++) {
          const key = this.item(depth + 1);
          if (typeof key !== 'number' && typeof key !== 'string') throw new CborError('map keys must be integers or text');
          if (out.has(key)) throw new CborError('duplicate map key');
          out.set(key, this.item(depth + 1));
        }
        return out;
      }
      case 7:
        if (info === 20) return false;
        if (info === 21) return true;
        if (info === 22) return null;
        if (info === 23) return undefined;
        throw new CborError('floating-point and other simple values are not supported');
      default:
        throw new CborError('tags are not supported');
    }
  }
}

/** Decode the first data item of `bytes`; `length` says how many bytes it took. */
export function decodeCborFirst(bytes: Uint8Array): { value: CborValue; length: number } {
  const reader = new Reader(bytes);
  const value = reader.item(0);
  return { value, length: reader.offset };
}

/** Decode exactly one data item that fills `bytes`. */
export function decodeCbor(bytes: Uint8Array): CborValue {
  const { value, length } = decodeCborFirst(bytes);
  if (length !== bytes.length) throw new CborError('trailing bytes after the data item');
  return value;
}
