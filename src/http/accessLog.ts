/**
 * The access log: one line per answered request ("request completed", with the method, the URL (see
 * `redactUrl` in src/app.ts), the status and the time taken in ms), written when the answer has gone, as an nginx or
 * Keycloak access log has. LATCHKEY_ACCESS_LOG chooses which requests get it at `info`: `all`, `errors` (status 400
 * and above, the default) or `off`; the rest are written at `debug`, as is a line when each request arrives (Fastify's
 * default writes both lines at `info` for every request). A server failure has its own line at `error`, with its
 * cause, whatever the mode: the error handler's ("request failed", src/plugins/errorHandler.ts) or, for the OpenID
 * Connect endpoints, which answer their own failures, src/oidc/routes.ts's.
 *
 * Why not every request by default: a sign-in is three requests, and at 1,000 sign-ins a second that is 3,000 lines
 * a second (about 60 GB a day at some 230 bytes a line) and about 8 % of the sign-in path's CPU (BENCHMARKS.md).
 * Each sign-in, sign-up and change is in the audit log; Keycloak too leaves its HTTP access log off unless asked.
 */
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import type { AccessLogMode } from '../config/index.js';

export class AccessLog extends LogController {
  constructor(private readonly mode: AccessLogMode) {
    // Fastify's own disableRequestLogging and requestIdLogLabel are not set by the app; their defaults apply.
    super();
  }

  override incomingRequest(request: FastifyRequest): void {
    if (this.isLogDisabled(request)) return;
    request.log.debug({ req: request }, 'incoming request');
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return;
    const line = { req: request, res: reply, responseTime: reply.elapsedTime };
    if (error) {
      // The response emitted an error, or an onResponse hook failed: a server fault, whatever the mode.
      reply.log.error({ ...line, err: error }, 'request errored');
    } else {
      const logged = this.mode === 'all' || (this.mode === 'errors' && reply.statusCode >= 400);
      reply.log[logged ? 'info' : 'debug'](line, 'request completed');
    }
  }
}
