/**
 * TypeBox schemas for the FIDO Alliance conformance API ("FIDO2: Conformance
 * testing server API", the Server Requirements and Transport Binding Profile).
 * Field names follow the profile, not @simplewebauthn/browser: results carry
 * `getClientExtensionResults` and may omit `rawId`.
 */
import { Type } from 'typebox';

/** base64url without padding or with up to two '=' (some clients pad); empty allowed only where noted. */
const B64URL = '^[A-Za-z0-9_-]*={0,2}$';
const b64url = (max: number) => Type.String({ minLength: 1, maxLength: max, pattern: B64URL });

const UserVerification = Type.Union([Type.Literal('required'), Type.Literal('preferred'), Type.Literal('discouraged')]);
const Attestation = Type.Union([Type.Literal('none'), Type.Literal('indirect'), Type.Literal('direct'), Type.Literal('enterprise')]);
/** AuthenticationExtensionsClientInputs / Outputs: echoed or ignored, never interpreted. */
const Extensions = Type.Record(Type.String(), Type.Unknown());

export const AuthenticatorSelectionSchema = Type.Object({
  authenticatorAttachment: Type.Optional(Type.String({ maxLength: 32 })),
  residentKey: Type.Optional(Type.String({ maxLength: 32 })),
  requireResidentKey: Type.Optional(Type.Boolean()),
  userVerification: Type.Optional(UserVerification),
});

/** ServerPublicKeyCredentialCreationOptionsRequest */
export const CreationOptionsRequestSchema = Type.Object({
  username: Type.String({ minLength: 1, maxLength: 254, pattern: '\\S' }),
  displayName: Type.String({ maxLength: 100 }),
  authenticatorSelection: Type.Optional(AuthenticatorSelectionSchema),
  attestation: Type.Optional(Attestation),
  extensions: Type.Optional(Extensions),
});

/** ServerPublicKeyCredentialGetOptionsRequest; without a username (or with "") the request is usernameless. */
export const GetOptionsRequestSchema = Type.Object({
  username: Type.Optional(Type.Union([Type.Literal(''), Type.String({ maxLength: 254, pattern: '\\S' })])),
  userVerification: Type.Optional(UserVerification),
  extensions: Type.Optional(Extensions),
});

const credentialFields = {
  id: b64url(1400),
  rawId: Type.Optional(b64url(1400)),
  /** Checked after validation so a wrong value gets a specific message. */
  type: Type.String({ maxLength: 64 }),
  getClientExtensionResults: Type.Optional(Extensions),
  clientExtensionResults: Type.Optional(Extensions),
  authenticatorAttachment: Type.Optional(Type.Union([Type.String({ maxLength: 32 }), Type.Null()])),
};

/** ServerPublicKeyCredential with a ServerAuthenticatorAttestationResponse */
export const AttestationResultSchema = Type.Object({
  ...credentialFields,
  response: Type.Object({
    clientDataJSON: b64url(8192),
    attestationObject: b64url(60000),
    transports: Type.Optional(Type.Array(Type.String({ maxLength: 32 }), { maxItems: 10 })),
  }),
});

/** ServerPublicKeyCredential with a ServerAuthenticatorAssertionResponse */
export const AssertionResultSchema = Type.Object({
  ...credentialFields,
  response: Type.Object({
    clientDataJSON: b64url(8192),
    authenticatorData: b64url(8192),
    signature: b64url(2048),
    // The profile's example sends "" when the authenticator returned no user handle.
    userHandle: Type.Optional(Type.Union([Type.String({ maxLength: 256, pattern: B64URL }), Type.Null()])),
  }),
});

/** ServerResponse */
export const ServerResponseSchema = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('failed')]),
  errorMessage: Type.String(),
});

/** ServerPublicKeyCredentialDescriptor */
const DescriptorSchema = Type.Object({
  type: Type.Literal('public-key'),
  id: Type.String(),
  transports: Type.Optional(Type.Array(Type.String())),
});

/** ServerPublicKeyCredentialCreationOptionsResponse */
export const CreationOptionsResponseSchema = Type.Object({
  status: Type.Literal('ok'),
  errorMessage: Type.String(),
  rp: Type.Object({ name: Type.String(), id: Type.String() }),
  user: Type.Object({ id: Type.String(), name: Type.String(), displayName: Type.String() }),
  challenge: Type.String(),
  pubKeyCredParams: Type.Array(Type.Object({ type: Type.Literal('public-key'), alg: Type.Integer() })),
  timeout: Type.Integer(),
  excludeCredentials: Type.Array(DescriptorSchema),
  authenticatorSelection: Type.Optional(AuthenticatorSelectionSchema),
  attestation: Type.String(),
  extensions: Type.Optional(Type.Unknown()),
});

/** ServerPublicKeyCredentialGetOptionsResponse */
export const GetOptionsResponseSchema = Type.Object({
  status: Type.Literal('ok'),
  errorMessage: Type.String(),
  challenge: Type.String(),
  timeout: Type.Integer(),
  rpId: Type.String(),
  allowCredentials: Type.Array(DescriptorSchema),
  userVerification: Type.String(),
  extensions: Type.Optional(Type.Unknown()),
});
