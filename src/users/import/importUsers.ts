/**
 * Bulk import of users from a CSV file, in two phases.
 *
 * 1. {@link planUserImport} checks every row with the console's own rules (checkNewUser, isRole), finds duplicates
 *    within the file and, in batched `IN` queries, the addresses that already have a user. The plan says what would
 *    be created, skipped (already exists) and refused, by line. Nothing is written.
 * 2. {@link writeUserImport} writes the plan's new users in batches, one transaction each: users (with the national
 *    identifier's HMAC), roles and one `user.created` audit record per user, all as multi-row inserts. An address
 *    taken between the phases is left out by the insert itself and reported as skipped, never a half-written batch.
 *
 * {@link importUsers} does both for the CLI (and is what an API route wraps); the console keeps the plan in a job row
 * between the check and the agent's confirmation (importJobs.ts). Enrolment emails go after the users are committed
 * ({@link emailImportedUsers}), and a mail that fails is reported for its line, never undoing the user.
 */
import type { Config } from '../../config/index.js';
import { randomToken } from '../../crypto.js';
import { normalizeEmail, normalizeName } from '../../db/persisters/users.js';
import type { AuditRecord } from '../../db/persisters/audit.js';
import type { EmailTemplate, NewUser, Role, User } from '../../db/schema.js';
import type { Store } from '../../db/store.js';
import type { Mailer } from '../../mail/mailer.js';
import type { Metrics } from '../../metrics/metrics.js';
import { issueEnrolmentEmail } from '../../flows/enrolment/enrolmentEmail.js';
import { isRole, ROLES } from '../../admin/roles.js';
import { checkNewUser } from '../addUser.js';
import { hashNationalId, nationalIdFormat } from '../nationalId.js';
import { ImportFileError, readUserCsv, type ImportColumn, type UserCsv } from './readUserCsv.js';

/** Rows per transaction: big enough that a commit's cost is shared, small enough to stay under both databases' parameter limits. */
export const IMPORT_BATCH_SIZE = 500;
/** Addresses per `IN` query when looking up who already exists. */
const LOOKUP_BATCH_SIZE = 1000;

export interface PlannedUser {
  line: number;
  name: string;
  email: string;
  /** HMAC of the normalised identifier (never the identifier: the plan may be stored while a job waits). */
  nationalIdHash: string | null;
  roles: Role[];
}

/** A problem with one cell: `field` is the column's name as the file's header spells it. */
export interface RefusedLine {
  line: number;
  field: string;
  message: string;
}

export interface SkippedLine {
  line: number;
  email: string;
  reason: string;
}

export interface MailFailure {
  line: number;
  email: string;
  message: string;
}

export interface ImportPlan {
  /** Data rows read (empty lines not counted). */
  rows: number;
  toCreate: PlannedUser[];
  skipped: SkippedLine[];
  /** One entry per problem; a line may have several. */
  refused: RefusedLine[];
  /** Lines with at least one problem. */
  refusedLines: number;
  /** Lines refused because they give roles and the importer may not grant them (a refusal of a privileged action). */
  rolesNotAllowed: number;
}

export const ALREADY_EXISTS = 'A user with this email address already exists';

export interface PlanOptions {
  secret: string;
  config: Pick<Config, 'nationalIdLabel' | 'nationalIdPattern' | 'nationalIdHint'>;
  /** Whether whoever imports may grant roles (roles.manage): without it a row with roles is refused. */
  canGrantRoles: boolean;
}

/** "ra_agent; auditor" → the roles, or the first word that is not one. Semicolons, commas and spaces separate them. */
function readRoles(cell: string): { roles: Role[] } | { unknown: string } {
  const roles: Role[] = [];
  for (const word of cell.split(/[\s;,]+/)) {
    if (!word) continue;
    const role = word.toLowerCase();
    if (!isRole(role)) return { unknown: word };
    if (!roles.includes(role)) roles.push(role);
  }
  return { roles };
}

/** Phase 1: every row checked, duplicates in the file and existing users found; nothing written. */
export async function planUserImport(store: Store, csv: UserCsv & { extraCells?: number[] }, options: PlanOptions): Promise<ImportPlan> {
  const format = nationalIdFormat(options.config);
  const fieldName = (column: ImportColumn) => csv.headers[column] ?? column;
  const extra = new Set(csv.extraCells ?? []);
  const refused: RefusedLine[] = [];
  const valid: PlannedUser[] = [];
  /** The first line of each address (normalised) in the file. */
  const firstLine = new Map<string, number>();
  let refusedLines = 0;
  let rolesNotAllowed = 0;

  for (const row of csv.rows) {
    const problems: RefusedLine[] = [];
    const refuse = (column: ImportColumn | 'line', message: string) => problems.push({ line: row.line, field: column === 'line' ? 'line' : fieldName(column), message });
    if (extra.has(row.line)) refuse('line', 'The line has more cells than the header has columns. Put a name with a comma in double quotes: "Smith, Jo"');
    const { values, errors } = checkNewUser(format, { name: row.name, email: row.email, nationalId: row.nationalId });
    for (const e of errors) refuse(e.field as ImportColumn, e.message);
    const read = readRoles(row.roles);
    let roles: Role[] = [];
    if ('unknown' in read) refuse('roles', `“${read.unknown.slice(0, 40)}” is not a role. Use ${ROLES.join(', ')}, separated by semicolons`);
    else if (read.roles.length && !options.canGrantRoles) {
      refuse('roles', 'Your role does not allow granting roles. Ask an RA Manager to import people with roles, or leave the roles column empty');
      rolesNotAllowed++;
    }
    else roles = read.roles;
    if (!errors.some((e) => e.field === 'email')) {
      const key = normalizeEmail(values.email);
      const earlier = firstLine.get(key);
      if (earlier !== undefined) refuse('email', `This email address is also on line ${earlier}. Each person can be in the file once`);
      else firstLine.set(key, row.line);
    }
    if (problems.length) {
      refused.push(...problems);
      refusedLines++;
      continue;
    }
    valid.push({
      line: row.line,
      name: values.name,
      email: values.email,
      nationalIdHash: values.nationalId ? hashNationalId(options.secret, values.nationalId) : null,
      roles,
    });
  }

  const toCreate: PlannedUser[] = [];
  const skipped: SkippedLine[] = [];
  for (let i = 0; i < valid.length; i += LOOKUP_BATCH_SIZE) {
    const batch = valid.slice(i, i + LOOKUP_BATCH_SIZE);
    const existing = await store.users.existingEmails(batch.map((u) => normalizeEmail(u.email)));
    for (const u of batch) {
      if (existing.has(normalizeEmail(u.email))) skipped.push({ line: u.line, email: u.email, reason: ALREADY_EXISTS });
      else toCreate.push(u);
    }
  }
  return { rows: csv.rows.length, toCreate, skipped, refused, refusedLines, rolesNotAllowed };
}

/** Who is importing, for the audit records: an agent in the console (with their request's address), or no one (the CLI). */
export interface ImportActor {
  userId: string | null;
  /** The admin API token that imports (no person does). */
  tokenId?: string | null;
  ip: string | null;
  userAgent: string | null;
}

export interface ImportProgress {
  phase: 'writing' | 'emailing';
  /** Of `total`: written or found taken (writing), or mails attempted (emailing). */
  done: number;
  total: number;
}

export interface CreatedUser {
  line: number;
  user: User;
}

export interface WriteOptions {
  now: () => number;
  actor: ImportActor;
  /** Recorded on each user's audit record, so an import's records can be found together. */
  importId: string;
  batchSize?: number;
  /** More writes in each batch's transaction (the console's job counts its progress there). */
  alongside?: (tx: Store, batch: { done: number; created: number; skipped: number }) => Promise<void>;
  onProgress?: (progress: ImportProgress) => void;
}

/** Phase 2: write the plan's new users in batches; returns who was created and who was found taken meanwhile. */
export async function writeUserImport(store: Store, toCreate: readonly PlannedUser[], options: WriteOptions): Promise<{ created: CreatedUser[]; skipped: SkippedLine[] }> {
  const size = options.batchSize ?? IMPORT_BATCH_SIZE;
  const created: CreatedUser[] = [];
  const skipped: SkippedLine[] = [];
  const { actor } = options;
  for (let i = 0; i < toCreate.length; i += size) {
    const batch = toCreate.slice(i, i + size);
    const t = options.now();
    const users: (NewUser & { line: number })[] = batch.map((p) => ({
      line: p.line,
      id: randomToken(16),
      email: p.email,
      email_normalized: normalizeEmail(p.email),
      display_name: p.name,
      status: 'pending',
      national_id_hash: p.nationalIdHash,
      created_at: t,
      updated_at: t,
    }));
    const written = await store.transaction(async (tx) => {
      const inserted = await tx.users.insertManyNew(users.map(({ line: _line, ...user }) => user));
      const records: AuditRecord[] = [];
      const grants: { userId: string; role: Role }[] = [];
      const record = (event: string, subject: string, detail: Record<string, unknown>) =>
        records.push({ at: t, event, outcome: 'success', actorUserId: actor.userId, actorTokenId: actor.tokenId ?? null, subjectUserId: subject, ip: actor.ip, userAgent: actor.userAgent, detail });
      batch.forEach((p, k) => {
        const id = users[k]!.id;
        if (!inserted.has(id)) return;
        // The console's own records: user.created as addUser writes it, roles.changed as the Roles form does.
        record('user.created', id, { nationalId: p.nationalIdHash !== null, via: 'import', importId: options.importId });
        if (p.roles.length) {
          for (const role of p.roles) grants.push({ userId: id, role });
          record('roles.changed', id, { added: p.roles, removed: [], via: 'import', importId: options.importId });
        }
      });
      await tx.roles.grantMany(grants, actor.userId, t);
      await tx.audit.recordMany(records);
      const counts = { done: batch.length, created: inserted.size, skipped: batch.length - inserted.size };
      await options.alongside?.(tx, counts);
      return inserted;
    });
    users.forEach((u, k) => {
      if (written.has(u.id)) {
        const { line, ...row } = u;
        const user: User = { ...row, status: 'pending', name_search: normalizeName(row.display_name), national_id_hash: row.national_id_hash ?? null, password_hash: null, failed_signins: 0, last_failed_signin_at: null, passkey_prompt_skipped_at: null, scim_external_id: null };
        created.push({ line, user });
      } else skipped.push({ line: batch[k]!.line, email: u.email, reason: ALREADY_EXISTS });
    });
    options.onProgress?.({ phase: 'writing', done: Math.min(i + size, toCreate.length), total: toCreate.length });
  }
  return { created, skipped };
}

export interface EmailOptions {
  template: EmailTemplate;
  /** Who issued the links (null: the CLI), as an agent's own links record it. */
  issuedBy: string | null;
  lifetimeSeconds: number;
  actor: ImportActor;
  importId: string;
  now: () => number;
  onProgress?: (progress: ImportProgress) => void;
}

/** Send each new user an enrolment email, one after another; a failed mail is reported for its line (its link revoked). */
export async function emailImportedUsers(
  /** `metrics`: the server's (console and API imports), counting each link emailed; none from the CLI. */
  deps: { store: Store; config: Config; mailer: Mailer; metrics?: Metrics },
  created: readonly CreatedUser[],
  options: EmailOptions,
): Promise<{ sent: number; failures: MailFailure[] }> {
  const failures: MailFailure[] = [];
  let sent = 0;
  const { actor } = options;
  for (const [i, { line, user }] of created.entries()) {
    try {
      const issued = await issueEnrolmentEmail(deps, options.template, user, options.now(), { issuedBy: options.issuedBy, lifetimeSeconds: options.lifetimeSeconds });
      await deps.store.audit.record({
        at: options.now(),
        event: 'enrolment.emailed',
        outcome: 'success',
        actorUserId: actor.userId,
        actorTokenId: actor.tokenId ?? null,
        subjectUserId: user.id,
        ip: actor.ip,
        userAgent: actor.userAgent,
        detail: { flowId: issued.flowId, templateId: options.template.id, via: 'import', importId: options.importId },
      });
      deps.metrics?.enrolment('issued', 'email');
      sent++;
    } catch (err) {
      failures.push({ line, email: user.email, message: err instanceof Error ? err.message : String(err) });
    }
    if ((i + 1) % 50 === 0 || i + 1 === created.length) options.onProgress?.({ phase: 'emailing', done: i + 1, total: created.length });
  }
  return { sent, failures };
}

/** What an import did (or, for a dry run or a refused file, would do). */
export interface ImportReport {
  importId: string;
  rows: number;
  /** Whether any user was written: false for a dry run, and when lines were refused without skipInvalid. */
  written: boolean;
  /** New users (or, when nothing was written, users that would be created). */
  created: number;
  skipped: SkippedLine[];
  refused: RefusedLine[];
  refusedLines: number;
  mailed: number;
  mailFailures: MailFailure[];
}

/** The largest CSV file the console and the admin API take (the command line takes any size). */
export const IMPORT_FILE_MAX_MEGABYTES = 20;

export interface ImportUsersOptions {
  fileName: string;
  /** Write the valid rows even when some are refused. */
  skipInvalid?: boolean;
  /** Check and report only. */
  dryRun?: boolean;
  /** Send each new user an enrolment email with this template. */
  enrolmentEmail?: { template: EmailTemplate; lifetimeSeconds: number };
  canGrantRoles: boolean;
  actor: ImportActor;
  /** Where the import came from, for the audit record: 'cli', 'api' … */
  source: string;
  batchSize?: number;
  onProgress?: (progress: ImportProgress) => void;
}

export interface ImportDeps {
  store: Store;
  config: Config;
  secret: string;
  now: () => number;
  mailer?: Mailer;
  /** The server's metrics (an import through the API); the CLI has none to count in. */
  metrics?: Metrics;
}

/** The summary record every import that wrote or was refused leaves (dry runs leave none). */
export async function auditImport(store: Store, at: number, actor: ImportActor, outcome: 'success' | 'refused' | 'failure', detail: Record<string, unknown>): Promise<void> {
  await store.audit.record({ at, event: 'users.imported', outcome, actorUserId: actor.userId, actorTokenId: actor.tokenId ?? null, ip: actor.ip, userAgent: actor.userAgent, detail });
}

/**
 * Check a CSV file and, unless it is a dry run or lines were refused without `skipInvalid`, write it and send the
 * enrolment emails. Throws ImportFileError when the file as a whole cannot be read.
 */
export async function importUsers(deps: ImportDeps, text: string, options: ImportUsersOptions): Promise<ImportReport> {
  const { store, config, now } = deps;
  const csv = readUserCsv(text, nationalIdFormat(config));
  const plan = await planUserImport(store, csv, { secret: deps.secret, config, canGrantRoles: options.canGrantRoles });
  const importId = randomToken(12);
  const report: ImportReport = {
    importId,
    rows: plan.rows,
    written: false,
    created: plan.toCreate.length,
    skipped: plan.skipped,
    refused: plan.refused,
    refusedLines: plan.refusedLines,
    mailed: 0,
    mailFailures: [],
  };
  const summary = () => ({
    importId,
    source: options.source,
    fileName: options.fileName.slice(0, 200),
    rows: report.rows,
    created: report.written ? report.created : 0,
    skipped: report.skipped.length,
    refused: report.refusedLines,
    mailed: report.mailed,
    mailFailed: report.mailFailures.length,
  });
  if (options.dryRun) return report;
  if (plan.refusedLines && !options.skipInvalid) {
    await auditImport(store, now(), options.actor, 'refused', { ...summary(), reason: 'lines_refused' });
    return report;
  }
  const { created, skipped } = await writeUserImport(store, plan.toCreate, { now, actor: options.actor, importId, batchSize: options.batchSize, onProgress: options.onProgress });
  report.written = true;
  report.created = created.length;
  report.skipped = [...plan.skipped, ...skipped].sort((a, b) => a.line - b.line);
  if (options.enrolmentEmail && created.length) {
    if (!deps.mailer) throw new Error('importUsers: enrolment emails need a mailer');
    const mailed = await emailImportedUsers({ store, config, mailer: deps.mailer, metrics: deps.metrics }, created, {
      ...options.enrolmentEmail,
      issuedBy: options.actor.userId,
      actor: options.actor,
      importId,
      now,
      onProgress: options.onProgress,
    });
    report.mailed = mailed.sent;
    report.mailFailures = mailed.failures;
  }
  await auditImport(store, now(), options.actor, 'success', summary());
  return report;
}

export { ImportFileError };
