/**
 * FIDO Alliance conformance API (Server Requirements and Transport Binding
 * Profile), registered under /fido2 only when LATCHKEY_FIDO_CONFORMANCE=true.
 *
 *   POST /fido2/attestation/options  ServerPublicKeyCredentialCreationOptionsRequest → …Response
 *   POST /fido2/attestation/result   ServerPublicKeyCredential (attestation)          → ServerResponse
 *   POST /fido2/assertion/options    ServerPublicKeyCredentialGetOptionsRequest      → …Response
 *   POST /fido2/assertion/result     ServerPublicKeyCredential (assertion)            → ServerResponse
 *
 * Options and results are linked by the browser binding cookie. The plugin is
 * encapsulated (not wrapped in fastify-plugin), so its error and not-found
 * handlers answer in the profile's `{ status: 'failed', errorMessage }` shape
 * for these routes only.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { configureConformanceTrust } from './configureConformanceTrust.js';
import {
  AssertionResultSchema,
  AttestationResultSchema,
  CreationOptionsRequestSchema,
  CreationOptionsResponseSchema,
  GetOptionsRequestSchema,
  GetOptionsResponseSchema,
  ServerResponseSchema,
} from './schemas.js';
import { sendServerFailure } from './serverResponse.js';
import { issueCreationOptions, issueRequestOptions, verifyAssertionResult, verifyAttestationResult } from './service.js';

export interface Fido2RoutesOptions {
  /** Directory of the conformance tool's metadata statements (*.json): config.fidoMetadataDir. */
  metadataDir?: string;
}

const failed = { 400: ServerResponseSchema, 404: ServerResponseSchema };

export async function fido2Routes(app: FastifyInstance, opts: Fido2RoutesOptions = {}) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const trust = await configureConformanceTrust({ metadataDir: opts.metadataDir });
  app.log.info({ metadataStatements: trust.statements }, 'FIDO conformance API enabled at /fido2');

  app.setErrorHandler((error, request, reply) => sendServerFailure(error, request, reply));
  app.setNotFoundHandler((request, reply) => {
    reply.status(404).send({ status: 'failed', errorMessage: `No conformance endpoint at ${request.method} ${request.url.split('?')[0]}` });
  });

  r.post(
    '/attestation/options',
    { schema: { body: CreationOptionsRequestSchema, response: { 200: CreationOptionsResponseSchema, ...failed } } },
    async (request) => issueCreationOptions(app, request, request.body),
  );

  r.post(
    '/attestation/result',
    { schema: { body: AttestationResultSchema, response: { 200: ServerResponseSchema, ...failed } } },
    async (request) => verifyAttestationResult(app, request, request.body),
  );

  r.post(
    '/assertion/options',
    { schema: { body: GetOptionsRequestSchema, response: { 200: GetOptionsResponseSchema, ...failed } } },
    async (request) => issueRequestOptions(app, request, request.body),
  );

  r.post(
    '/assertion/result',
    { schema: { body: AssertionResultSchema, response: { 200: ServerResponseSchema, ...failed } } },
    async (request) => verifyAssertionResult(app, request, request.body),
  );
}
