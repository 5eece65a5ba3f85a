/**
 * Refuse text that contains U+0000 anywhere in a request's body, query string
 * or path parameters, with the usual 400 `validation_failed`.
 *
 * PostgreSQL's text type cannot hold the character (it answers "invalid byte
 * sequence"), so without this check the same request that SQLite stores or
 * refuses cleanly would end in a 500 on PostgreSQL. No field of ours has a
 * use for it. Runs before schema validation, for every route.
 */
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { appError } from '../errors.js';

/** Whether `value` (parsed JSON, a form, a query) holds a string with U+0000, in a key or a value. */
export function containsNul(value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (value === null || typeof value !== 'object' || depth > 32) return false;
  if (Array.isArray(value)) return value.some((item) => containsNul(item, depth + 1));
  for (const [key, item] of Object.entries(value)) {
    if (key.includes('\u0000') || containsNul(item, depth + 1)) return true;
  }
  return false;
}

export const refuseNulCharactersPlugin = fp(
  async (app: FastifyInstance) => {
    // A callback hook, not an async one: it runs on every request, and a promise per hook costs microseconds here.
    app.addHook('preValidation', (request, _reply, done) => {
      const refused = containsNul(request.params) || containsNul(request.query) || containsNul(request.body);
      done(refused ? appError('validation_failed', 'Some of the information sent contains a character that is not allowed (U+0000). Remove it and try again.') : undefined);
    });
  },
  { name: 'refuseNulCharacters' },
);
