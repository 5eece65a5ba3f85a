/**
 * SCIM's own error shape (RFC 7644 §3.12): `{ schemas: [urn:…:Error], status: "409", scimType, detail }`, for
 * everything /scim/v2 answers with an error — SCIMMY's protocol errors, and the project's AppErrors (the bearer
 * gate's 401 and 403, validation, body limits), which keep their status and message, with a scimType only where
 * one of the RFC's fits.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import SCIMMY from 'scimmy';
import { toAppError } from '../plugins/errorHandler.js';
import type { ErrorCode } from '../errors.js';

export const SCIM_CONTENT_TYPE = 'application/scim+json; charset=utf-8';

export type ScimType = 'uniqueness' | 'tooMany' | 'invalidFilter' | 'mutability' | 'invalidSyntax' | 'invalidPath' | 'noTarget' | 'invalidValue' | 'invalidVers' | 'sensitive';

/**
 * A SCIM refusal thrown by Latchkey's own code. It carries `statusCode` so that the rest of the app (the audit of
 * refusals, the log) sees a 4xx for what it is, not an unexplained failure.
 */
export class ScimError extends Error {
  readonly statusCode: number;
  constructor(
    readonly status: number,
    readonly scimType: ScimType | undefined,
    readonly detail: string,
  ) {
    super(detail);
    this.name = 'ScimError';
    this.statusCode = status;
  }
}

export function scimError(status: number, scimType: ScimType | undefined, detail: string): ScimError {
  return new ScimError(status, scimType, detail);
}

/** SCIMMY's errors (Types.Error) as ours, so they carry a statusCode too. */
export function fromScimmy(error: unknown): unknown {
  if (error instanceof SCIMMY.Types.Error) {
    const e = error as unknown as { status: number; scimType?: ScimType; message: string };
    return scimError(Number(e.status), e.scimType || undefined, e.message);
  }
  return error;
}

/** Which RFC 7644 §3.12 scimType a project error code is, where one is. */
const scimTypes: Partial<Record<ErrorCode, ScimType>> = {
  validation_failed: 'invalidValue',
  bad_request: 'invalidSyntax',
};

export interface ScimErrorBody {
  schemas: string[];
  status: string;
  scimType?: string;
  detail?: string;
}

/** The status and §3.12 body for anything thrown on a SCIM route; 5xx details stay in the log. */
export function scimErrorResponse(error: unknown, request: FastifyRequest): { status: number; body: ScimErrorBody; cause: 'scim' | 'app' } {
  const scimmy = fromScimmy(error);
  if (scimmy instanceof ScimError && scimmy.status < 500) {
    return { status: scimmy.status, body: body(scimmy.status, scimmy.scimType, scimmy.detail), cause: 'scim' };
  }
  const app = toAppError(scimmy instanceof ScimError ? new Error(scimmy.detail) : (error as FastifyError), request);
  // The schema's own words name the parameter ("querystring/count must be integer"): integrators read these, and
  // the project's field labels are for people filling in its forms.
  const validation = (error as FastifyError | null)?.validation ? `${app.message.replace(/\.$/, '')}: ${(error as FastifyError).message}.` : undefined;
  return { status: app.status, body: body(app.status, scimTypes[app.code], validation ?? app.message), cause: 'app' };
}

function body(status: number, scimType: ScimType | undefined, detail: string): ScimErrorBody {
  try {
    // SCIMMY checks the pair against the RFC (a scimType only with 400, 409 or 413).
    const message = new SCIMMY.Messages.ErrorResponse({ status: status as never, scimType, detail });
    return { schemas: message.schemas, status: String(message.status), ...(message.scimType ? { scimType: message.scimType } : {}), ...(message.detail ? { detail: message.detail } : {}) };
  } catch {
    // Statuses outside RFC 7644's list (415, 429, 503) still answer in the same shape.
    return { schemas: [SCIMMY.Messages.ErrorResponse.id], status: String(status), detail };
  }
}

/** Send a SCIM error (the plugin's error handler). */
export function sendScimError(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const { status, body: payload } = scimErrorResponse(error, request);
  if (status >= 500) request.log.error({ err: error }, 'SCIM request failed');
  else request.log.info({ status, scimType: payload.scimType }, 'SCIM request refused');
  return reply.status(status).type(SCIM_CONTENT_TYPE).send(payload);
}
