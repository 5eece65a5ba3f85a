/** TypeBox schemas that many routes share, so each rule is written once. */
import { Type } from 'typebox';

/** A record's id in a path (users, authenticators, flows, templates): our random tokens, never a path or a query. */
export const Id = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' });

/** The CSRF field of a form body, spread into the body's properties (sessions.ts checks it; the schema only bounds it). */
export const Csrf = { _csrf: Type.Optional(Type.String({ maxLength: 200 })) };

/** A form body that carries nothing but the CSRF field (Remove, Revoke, Delete buttons). */
export const CsrfBody = Type.Object(Csrf);
