/**
 * Whether an error thrown by a query is a unique-constraint (or primary-key)
 * violation, on either database. Callers that let the database settle a race,
 * such as two sign-ups for one email address, map it to their own error.
 */
export function isUniqueViolation(error: unknown): boolean {
  if (typeof error !== 'object' || error === null || !('code' in error)) return false;
  const code = (error as { code: unknown }).code;
  // PostgreSQL SQLSTATE 23505 unique_violation (primary keys included).
  if (code === '23505') return true;
  // better-sqlite3 extended result codes.
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}
