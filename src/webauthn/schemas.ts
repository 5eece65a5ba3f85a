/** TypeBox schemas for WebAuthn responses as @simplewebauthn/browser sends them. */
import { Type } from 'typebox';
import { EMAIL_ADDRESS_MAX_LENGTH, EMAIL_ADDRESS_PATTERN } from '../users/emailAddress.js';

const b64url = (max: number) => Type.String({ minLength: 1, maxLength: max, pattern: '^[A-Za-z0-9_-]+={0,2}$' });

export const AuthenticationResponseSchema = Type.Object({
  id: b64url(1400),
  rawId: b64url(1400),
  type: Type.Literal('public-key'),
  response: Type.Object({
    clientDataJSON: b64url(8192),
    authenticatorData: b64url(8192),
    signature: b64url(2048),
    userHandle: Type.Optional(Type.Union([Type.String({ maxLength: 256 }), Type.Null()])),
  }),
  authenticatorAttachment: Type.Optional(Type.Union([Type.String({ maxLength: 32 }), Type.Null()])),
  clientExtensionResults: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});

export const RegistrationResponseSchema = Type.Object({
  id: b64url(1400),
  rawId: b64url(1400),
  type: Type.Literal('public-key'),
  response: Type.Object({
    clientDataJSON: b64url(8192),
    attestationObject: b64url(48000),
    authenticatorData: Type.Optional(b64url(8192)),
    transports: Type.Optional(Type.Array(Type.String({ maxLength: 32 }), { maxItems: 10 })),
    // A COSE algorithm identifier (IANA registry: 32-bit signed).
    publicKeyAlgorithm: Type.Optional(Type.Integer({ minimum: -2147483648, maximum: 2147483647 })),
    publicKey: Type.Optional(b64url(4096)),
  }),
  authenticatorAttachment: Type.Optional(Type.Union([Type.String({ maxLength: 32 }), Type.Null()])),
  clientExtensionResults: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});

export const PlacementSchema = Type.Union([Type.Literal('this-device'), Type.Literal('another-device'), Type.Literal('security-key')]);

/** A passkey name people choose ("Name your device", seed 002). */
export const PasskeyNameSchema = Type.String({ minLength: 1, maxLength: 64, pattern: '\\S' });

export const EmailSchema = Type.String({ minLength: 3, maxLength: EMAIL_ADDRESS_MAX_LENGTH, pattern: EMAIL_ADDRESS_PATTERN });
export const DisplayNameSchema = Type.String({ minLength: 1, maxLength: 100, pattern: '\\S' });
