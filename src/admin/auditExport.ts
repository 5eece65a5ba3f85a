/**
 * Searching and exporting the audit log, as the console's audit page and the admin API both do it: one reading of
 * the filters (event; actor and subject by email address, or an actor that is an API token by its id or name; from and to
 * as whole days, UTC) and one CSV format, defused against spreadsheet formulas (csvCell.ts).
 */
import { randomToken } from '../crypto.js';
import type { FieldError } from '../errors.js';
import type { AuditFilter, AuditRow } from '../db/persisters/audit.js';
import type { Store } from '../db/store.js';
import { csvCell } from './csvCell.js';

/** The most rows one CSV export holds; narrow the filters for more. */
export const AUDIT_CSV_LIMIT = 100_000;

export interface AuditQueryValues {
  event?: string;
  /** An email address, or an API token's id or name (no "@"). */
  actor?: string;
  subject?: string;
  /** YYYY-MM-DD, inclusive. */
  from?: string;
  /** YYYY-MM-DD, inclusive (the whole day). */
  to?: string;
}

export interface AuditFilterValues {
  event: string;
  actor: string;
  subject: string;
  from: string;
  to: string;
}

const DAY_MS = 24 * 3600 * 1000;

/** The filter for `q`, with a message at each field that is not right (then nothing should be searched). */
export async function readAuditFilter(store: Store, q: AuditQueryValues): Promise<{ values: AuditFilterValues; errors: FieldError[]; filter: AuditFilter }> {
  const values: AuditFilterValues = { event: q.event ?? '', actor: (q.actor ?? '').trim(), subject: (q.subject ?? '').trim(), from: q.from ?? '', to: q.to ?? '' };
  const errors: FieldError[] = [];
  const day = (field: 'from' | 'to', value: string) => {
    if (!value) return undefined;
    const t = /^\d{4}-\d{2}-\d{2}$/.test(value) ? Date.parse(`${value}T00:00:00Z`) : NaN;
    if (Number.isNaN(t)) errors.push({ field, message: 'Enter a date like 2026-11-22' });
    return Number.isNaN(t) ? undefined : t;
  };
  const from = day('from', values.from);
  const toStart = day('to', values.to);
  const person = async (email: string) => {
    if (!email) return undefined;
    const u = await store.users.findByEmail(email);
    // No match is an empty result, not an error: the person may have been removed.
    return u?.id ?? `none:${randomToken(4)}`;
  };
  // An email address names a person; anything else an API token, by its id or name (a token acts for no person:
  // audit records name it, not its maker).
  const actorIsToken = values.actor !== '' && !values.actor.includes('@');
  const filter: AuditFilter = {
    event: values.event || undefined,
    actorUserId: actorIsToken ? undefined : await person(values.actor),
    actorTokenIds: actorIsToken ? await store.apiTokens.idsByIdOrName(values.actor) : undefined,
    subjectUserId: await person(values.subject),
    from,
    to: toStart === undefined ? undefined : toStart + DAY_MS,
  };
  return { values, errors, filter };
}

export const AUDIT_CSV_HEADER = [
  'time',
  'event',
  'outcome',
  'actor_email',
  'actor_name',
  // The token columns come after the person's: an event has one or the other (or neither: Latchkey did it).
  'actor_token_id',
  'actor_token_name',
  'subject_email',
  'subject_name',
  'authenticator_id',
  'ip',
  'user_agent',
  'detail',
];

/** The rows as CSV (RFC 4180, CRLF), a header first. */
export function auditCsv(rows: readonly AuditRow[]): string {
  const lines = [AUDIT_CSV_HEADER.join(',')];
  for (const row of rows) {
    lines.push(
      [
        new Date(row.at).toISOString(),
        row.event,
        row.outcome,
        row.actor_email,
        row.actor_name,
        row.actor_token_id,
        row.actor_token_name,
        row.subject_email,
        row.subject_name,
        row.authenticator_id,
        row.ip,
        row.user_agent,
        row.detail,
      ]
        .map(csvCell)
        .join(','),
    );
  }
  return lines.join('\r\n') + '\r\n';
}

/** The download's file name for an export made at `now`. */
export function auditCsvFileName(now: number): string {
  return `latchkey-audit-${new Date(now).toISOString().slice(0, 10)}.csv`;
}
