/**
 * The profile's ServerResponse: `{ status: 'ok' | 'failed', errorMessage }`.
 * Every refusal under /fido2 is HTTP 400 with status "failed" and a non-empty
 * message (the conformance tool checks both); only a fault of ours is a 500.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { appError, type AppError } from '../errors.js';
import { toAppError } from '../plugins/errorHandler.js';

export const OK = { status: 'ok', errorMessage: '' } as const;

export interface ServerFailure {
  status: 'failed';
  errorMessage: string;
}

/** A refusal with a message for the conformance log (technical wording is fine here: no person reads it). */
export function conformanceFailure(message: string): AppError {
  return appError('bad_request', message);
}

function describeValidation(error: FastifyError): string {
  const parts = (error.validation ?? []).slice(0, 5).map((v) => {
    const path = (v.instancePath || '').replace(/^\//, '').replace(/\//g, '.');
    const missing = (v.params as { missingProperty?: string } | undefined)?.missingProperty;
    if (missing) return `${path ? `${path}.` : ''}${missing} is missing`;
    return `${path || 'body'} ${v.message ?? 'is not valid'}`;
  });
  return `Invalid request: ${parts.join('; ') || 'the body does not match the profile'}`;
}

/** Map anything thrown in the /fido2 routes (schema, JSON parser, our checks) to the profile's failed shape. */
export function sendServerFailure(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const e = error as FastifyError;
  let status = 400;
  let errorMessage: string;
  if (e?.validation) {
    errorMessage = describeValidation(e);
  } else {
    const appErr = toAppError(error);
    if (appErr.status >= 500) status = 500;
    errorMessage = appErr.message;
  }
  if (status >= 500) request.log.error({ err: error }, 'fido2 request failed');
  else request.log.info({ reason: errorMessage }, 'fido2 request refused');
  const body: ServerFailure = { status: 'failed', errorMessage: errorMessage || 'The request failed.' };
  return reply.status(status).type('application/json; charset=utf-8').send(body);
}
