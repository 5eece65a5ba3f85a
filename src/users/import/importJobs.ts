/**
 * Bulk imports from the console, as jobs kept in the database (user_imports, migration 0012): the upload is checked
 * into a job (`checked`, holding the validated rows), the agent confirms, and the job writes them in the background
 * (`running` → `done` or `failed`), counting its progress in each batch's own transaction. Any instance can show the
 * progress page, and a reload loses nothing.
 */
import type { Config } from '../../config/index.js';
import { randomToken } from '../../crypto.js';
import type { UserImport } from '../../db/schema.js';
import type { Store } from '../../db/store.js';
import type { Mailer } from '../../mail/mailer.js';
import { findEnrolmentTemplate } from '../../flows/enrolment/enrolmentEmail.js';
import { nationalIdFormat } from '../nationalId.js';
import {
  auditImport,
  emailImportedUsers,
  writeUserImport,
  planUserImport,
  type ImportActor,
  type MailFailure,
  type PlannedUser,
  type RefusedLine,
  type SkippedLine,
} from './importUsers.js';
import { readUserCsv } from './readUserCsv.js';
import type { Metrics } from '../../metrics/metrics.js';

/** What the agent chose with the file. */
export interface ImportJobOptions {
  sendEmail: boolean;
  templateId?: string;
}

/** The job's report column: refused and skipped lines, mails, and while it runs, which phase it is in. */
export interface StoredImportReport {
  refused: RefusedLine[];
  skipped: SkippedLine[];
  mailFailures: MailFailure[];
  mailed: number;
  phase?: 'writing' | 'emailing';
  /** A failed job: what stopped it, in words for the agent (details are in the server log). */
  error?: string;
}

export interface ImportJobDeps {
  store: Store;
  config: Config;
  secret: string;
  mailer: Mailer;
  now: () => number;
  log: { error(obj: object, msg: string): void };
  metrics?: Metrics;
}

export function readJobReport(job: UserImport): StoredImportReport {
  return JSON.parse(job.report) as StoredImportReport;
}

/** Whether the rows a job will write grant any role (the agent starting it must still be allowed to grant roles). */
export function jobGrantsRoles(job: UserImport): boolean {
  return job.plan !== null && (JSON.parse(job.plan) as PlannedUser[]).some((u) => u.roles.length > 0);
}

export function readJobOptions(job: UserImport): ImportJobOptions {
  return JSON.parse(job.options) as ImportJobOptions;
}

/** Check an uploaded file into a job (phase 1); throws ImportFileError when the file as a whole cannot be read. */
export async function checkImportFile(
  deps: Pick<ImportJobDeps, 'store' | 'config' | 'secret' | 'now'>,
  upload: { fileName: string; text: string },
  agent: { userId: string; canGrantRoles: boolean },
  options: ImportJobOptions,
): Promise<UserImport & { rolesNotAllowed: number }> {
  const { store, config, secret, now } = deps;
  const csv = readUserCsv(upload.text, nationalIdFormat(config));
  const plan = await planUserImport(store, csv, { secret, config, canGrantRoles: agent.canGrantRoles });
  const t = now();
  const report: StoredImportReport = { refused: plan.refused, skipped: plan.skipped, mailFailures: [], mailed: 0 };
  const job: UserImport = {
    id: randomToken(16),
    created_by: agent.userId,
    file_name: upload.fileName.slice(0, 200) || 'upload.csv',
    state: 'checked',
    options: JSON.stringify(options),
    rows: plan.rows,
    to_create: plan.toCreate.length,
    done: 0,
    created: 0,
    skipped: plan.skipped.length,
    refused: plan.refusedLines,
    plan: JSON.stringify(plan.toCreate),
    report: JSON.stringify(report),
    created_at: t,
    updated_at: t,
    finished_at: null,
  };
  await store.userImports.insert(job);
  return { ...job, rolesNotAllowed: plan.rolesNotAllowed };
}

/**
 * Phase 2, in the background: write the job's rows, send the enrolment emails if chosen, and record the report and
 * one `users.imported` audit record. Never rejects: a failure is the job's state, with the reason in the server log.
 */
export async function runImportJob(deps: ImportJobDeps, jobId: string, actor: ImportActor): Promise<void> {
  const { store, now } = deps;
  const job = await store.userImports.findById(jobId);
  if (!job || job.state !== 'running' || job.plan === null) return;
  const report = readJobReport(job);
  const options = readJobOptions(job);
  const toCreate = JSON.parse(job.plan) as PlannedUser[];
  const summary = (created: number) => ({
    importId: job.id,
    source: 'console',
    fileName: job.file_name,
    rows: job.rows,
    created,
    skipped: report.skipped.length,
    refused: job.refused,
    mailed: report.mailed,
    mailFailed: report.mailFailures.length,
  });
  let created = 0;
  try {
    const written = await writeUserImport(store, toCreate, {
      now,
      actor,
      importId: job.id,
      alongside: (tx, batch) => tx.userImports.addProgress(job.id, batch, now()),
    });
    created = written.created.length;
    report.skipped = [...report.skipped, ...written.skipped].sort((a, b) => a.line - b.line);
    if (options.sendEmail && written.created.length) {
      report.phase = 'emailing';
      await store.userImports.setReport(job.id, JSON.stringify(report), now());
      const template = await findEnrolmentTemplate(store, options.templateId);
      const mailed = await emailImportedUsers(deps, written.created, {
        template,
        issuedBy: actor.userId,
        lifetimeSeconds: deps.config.inviteSeconds,
        actor,
        importId: job.id,
        now,
        onProgress: (p) => {
          report.mailed = p.done;
          void store.userImports.setReport(job.id, JSON.stringify(report), now()).catch(() => {});
        },
      });
      report.mailed = mailed.sent;
      report.mailFailures = mailed.failures;
    }
    delete report.phase;
    await store.transaction(async (tx) => {
      await tx.userImports.finish(job.id, 'done', JSON.stringify(report), now());
      await auditImport(tx, now(), actor, 'success', summary(created));
    });
  } catch (err) {
    deps.log.error({ err, importId: job.id }, 'bulk import failed');
    report.error = 'The import stopped because of a problem on our side. The users written before it stopped are kept; upload the file again to add the rest (those already added are skipped).';
    delete report.phase;
    await store
      .transaction(async (tx) => {
        await tx.userImports.finish(job.id, 'failed', JSON.stringify(report), now());
        await auditImport(tx, now(), actor, 'failure', summary(created));
      })
      .catch((finishError: unknown) => deps.log.error({ err: finishError, importId: job.id }, 'bulk import failure not recorded'));
  }
}
