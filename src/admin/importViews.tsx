/** Console pages of a bulk import: the upload form, the check, the progress and the report (routes/imports.tsx). */
import type { EmailTemplate, UserImport } from '../db/schema.js';
import type { FieldError } from '../errors.js';
import type { NationalIdFormat } from '../users/nationalId.js';
import type { ImportJobOptions, StoredImportReport } from '../users/import/importJobs.js';
import { CsrfField, ErrorSummary, Field } from '../views/layout.js';
import { ROLES } from './roles.js';
import { AdminLayout, type AdminContext } from './views.js';

/** A running import whose row has not changed for this long is reported as stalled. */
export const STALLED_AFTER_MS = 5 * 60 * 1000;

/** Lines of each kind shown on a page; the full report is the CSV download. */
export const LINES_SHOWN = 50;

const n = (count: number) => count.toLocaleString('en-GB');

export function ImportUploadPage(
  m: AdminContext & { nationalId: NationalIdFormat; templates: EmailTemplate[]; maxFileMegabytes: number; errors: FieldError[]; canGrantRoles: boolean; sendEmail?: boolean; templateId?: string },
) {
  const error = (field: string) => m.errors.find((e) => e.field === field);
  return (
    <AdminLayout {...m} title="Import users from a file">
      <a href="/admin" class="back-link">
        Back
      </a>
      <h1>Import users from a file</h1>
      <ErrorSummary fields={m.errors} />
      <p>Add many people at once from a CSV file. Every line is checked before anything is added, and you see the result before you confirm.</p>
      <h2>What the file needs</h2>
      <p>The first line names the columns, in any order. Then one line per person.</p>
      <dl class="summary">
        <dt>name</dt>
        <dd>The person’s full name. Required.</dd>
        <dt>email</dt>
        <dd>Their email address. Required. People who already have an account with this address are skipped, not changed.</dd>
        <dt>{m.nationalId.label.toLowerCase()}</dt>
        <dd>Optional. Needed for self-service. Also read under the headings “nino” or “national id”.</dd>
        <dt>roles</dt>
        <dd>
          Optional, for console agents: {ROLES.join(', ')}, separated by semicolons.
          {m.canGrantRoles ? null : ' Only an RA Manager can import people with roles.'}
        </dd>
      </dl>
      <p>
        <a href="/admin/users/import/example.csv" download="users-example.csv">
          Download an example file
        </a>{' '}
        (CSV, 4 lines)
      </p>
      <form method="post" action="/admin/users/import" enctype="multipart/form-data" novalidate>
        <CsrfField token={m.csrfToken} />
        <Field id="file" label="CSV file" hint={`Saved as CSV UTF-8 (in Excel: File, Save As, CSV UTF-8). Up to ${m.maxFileMegabytes} MB.`} error={error('file')}>
          <input type="file" id="file" name="file" accept=".csv,text/csv" aria-invalid={error('file') ? 'true' : undefined} />
        </Field>
        <div class="field">
          <div class="checkbox">
            <input type="checkbox" id="sendEmail" name="sendEmail" value="yes" checked={m.sendEmail} />
            <label for="sendEmail">Send each new user an enrolment email</label>
          </div>
        </div>
        <Field id="template" label="Email template" hint="Used only when enrolment emails are sent. Each link works once.">
          <select id="template" name="template">
            {m.templates.map((t) => (
              <option value={t.id} selected={m.templateId ? t.id === m.templateId : t.is_default === 1}>
                {t.name}
              </option>
            ))}
          </select>
        </Field>
        <button type="submit">Check the file</button>
      </form>
    </AdminLayout>
  );
}

function LinesTable(props: { id: string; caption: string; rows: { line: number; field: string; message: string }[]; total: number; reportHref: string }) {
  if (!props.rows.length) return null;
  return (
    <>
      <h2 id={props.id}>{props.caption}</h2>
      <table aria-labelledby={props.id}>
        <thead>
          <tr>
            <th scope="col">Line</th>
            <th scope="col">Column</th>
            <th scope="col">Problem</th>
          </tr>
        </thead>
        <tbody>
          {props.rows.slice(0, LINES_SHOWN).map((r) => (
            <tr>
              <td data-label="Line">{r.line}</td>
              <td data-label="Column">{r.field}</td>
              <td data-label="Problem">{r.message}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {props.total > LINES_SHOWN ? (
        <p>
          The first {LINES_SHOWN} of {n(props.total)}. <a href={props.reportHref}>Download the full report (CSV)</a>
        </p>
      ) : null}
    </>
  );
}

function Counts(props: { rows: [string, string][] }) {
  return (
    <dl class="summary">
      {props.rows.map(([term, value]) => (
        <>
          <dt>{term}</dt>
          <dd>{value}</dd>
        </>
      ))}
    </dl>
  );
}

function ReportLines(props: { job: UserImport; report: StoredImportReport }) {
  const reportHref = `/admin/imports/${props.job.id}/report.csv`;
  const { report } = props;
  return (
    <>
      <LinesTable id="refused" caption="Refused lines" rows={report.refused} total={report.refused.length} reportHref={reportHref} />
      <LinesTable
        id="skipped"
        caption="Skipped: already have an account"
        rows={report.skipped.map((s) => ({ line: s.line, field: s.email, message: s.reason }))}
        total={report.skipped.length}
        reportHref={reportHref}
      />
      <LinesTable
        id="unmailed"
        caption="Enrolment emails not sent"
        rows={report.mailFailures.map((f) => ({ line: f.line, field: f.email, message: f.message }))}
        total={report.mailFailures.length}
        reportHref={reportHref}
      />
      {report.refused.length || report.skipped.length || report.mailFailures.length ? (
        <p>
          <a href={reportHref}>Download the report (CSV)</a>
        </p>
      ) : null}
    </>
  );
}

/** After the upload: what would happen, and the agent's choice. */
export function ImportCheckPage(m: AdminContext & { job: UserImport; report: StoredImportReport; options: ImportJobOptions; templateName?: string; isUploader: boolean }) {
  const { job } = m;
  const valid = job.to_create;
  return (
    <AdminLayout {...m} title="Check the import">
      <a href="/admin/users/import" class="back-link">
        Back
      </a>
      <span class="caption">{job.file_name}</span>
      <h1>Check the import</h1>
      {job.refused ? (
        <div class="notice warning" role="status">
          {n(job.refused)} {job.refused === 1 ? 'line was' : 'lines were'} refused. Nothing has been added yet.
        </div>
      ) : null}
      <Counts
        rows={[
          ['Lines read', n(job.rows)],
          ['New users to add', n(valid)],
          ['Already have an account (skipped)', n(job.skipped)],
          ['Refused lines', n(job.refused)],
          ['Enrolment emails', m.options.sendEmail ? `Sent to each new user, with the template “${m.templateName ?? 'Default'}”` : 'Not sent'],
        ]}
      />
      <ReportLines job={job} report={m.report} />
      {!m.isUploader ? (
        <p>Only the agent who uploaded this file can start the import.</p>
      ) : valid === 0 ? (
        <p>
          There is nobody new to add. <a href="/admin/users/import">Upload another file</a>
        </p>
      ) : (
        <form method="post" action={`/admin/imports/${job.id}/start`}>
          <CsrfField token={m.csrfToken} />
          <button type="submit">{job.refused ? `Import the ${n(valid)} valid ${valid === 1 ? 'row' : 'rows'}` : `Import ${n(valid)} ${valid === 1 ? 'user' : 'users'}`}</button>
          {job.refused ? (
            <p>
              or <a href="/admin/users/import">upload a corrected file</a>
            </p>
          ) : null}
        </form>
      )}
    </AdminLayout>
  );
}

/** While the job runs: a progress bar, reloaded every 2 seconds; when it ends, the report. */
export function ImportProgressPage(m: AdminContext & { job: UserImport; report: StoredImportReport; now: number }) {
  const { job, report } = m;
  const running = job.state === 'running';
  // Every batch and every 50 mails move updated_at: a job that has not moved for this long lost its server.
  const stalled = running && m.now - job.updated_at > STALLED_AFTER_MS;
  const emailing = report.phase === 'emailing';
  const [done, total] = emailing ? [report.mailed, job.created] : [job.done, job.to_create];
  const title = running ? 'Importing users' : job.state === 'failed' ? 'The import stopped' : 'Import finished';
  return (
    <AdminLayout {...m} title={title} refreshSeconds={running ? 2 : undefined}>
      {running ? null : (
        <a href="/admin/users" class="back-link">
          Back to users
        </a>
      )}
      <span class="caption">{job.file_name}</span>
      <h1>{title}</h1>
      {report.error ? <ErrorSummary message={report.error} /> : null}
      {stalled ? (
        <div class="notice warning" role="status">
          This import has not moved for {Math.floor((m.now - job.updated_at) / 60_000)} minutes: the server running it may have stopped. The users added so far are kept.
          To add the rest, upload the file again: those already added are skipped.
        </div>
      ) : null}
      {running ? (
        <div class="field">
          <label for="progress">{emailing ? 'Sending enrolment emails' : 'Adding users'}</label>
          <progress id="progress" max={Math.max(total, 1)} value={done}>
            {Math.round((done / Math.max(total, 1)) * 100)}%
          </progress>
          <p role="status">
            {n(done)} of {n(total)}. This page updates itself; you can leave it and come back.
          </p>
        </div>
      ) : null}
      <Counts
        rows={[
          ['Lines read', n(job.rows)],
          ['Users added', n(job.created)],
          ['Already had an account (skipped)', n(report.skipped.length)],
          ['Refused lines', n(job.refused)],
          ...(readSendEmail(job) ? ([['Enrolment emails sent', n(report.mailed)], ['Enrolment emails not sent', n(report.mailFailures.length)]] as [string, string][]) : []),
        ]}
      />
      {running ? null : <ReportLines job={job} report={report} />}
    </AdminLayout>
  );
}

function readSendEmail(job: UserImport): boolean {
  return (JSON.parse(job.options) as ImportJobOptions).sendEmail;
}
