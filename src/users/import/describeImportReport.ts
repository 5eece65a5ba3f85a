/** An import's report as lines of text (the CLI's output) and as CSV (the console's "Download the full report"). */
import { csvCell } from '../../admin/csvCell.js';
import type { ImportReport } from './importUsers.js';

const n = (count: number) => count.toLocaleString('en-GB');
const plural = (count: number, one: string, many: string) => `${n(count)} ${count === 1 ? one : many}`;

/** Counts first, then every refused, skipped and unmailed line: `line 17: email: Enter an email address…`. */
export function describeImportReport(report: ImportReport, fileName: string, dryRun = false): string {
  const out: string[] = [`Checked ${plural(report.rows, 'row', 'rows')} of ${fileName}.`];
  if (report.written) out.push(`Created ${plural(report.created, 'user', 'users')}.`);
  else out.push(`${dryRun ? 'Would create' : 'Nothing was written. Valid new users'}: ${n(report.created)}.`);
  out.push(`Skipped ${n(report.skipped.length)} (already ${report.skipped.length === 1 ? 'exists' : 'exist'}).`);
  out.push(`Refused ${plural(report.refusedLines, 'line', 'lines')}.`);
  if (report.mailed || report.mailFailures.length) out.push(`Enrolment emails: ${n(report.mailed)} sent, ${n(report.mailFailures.length)} not sent.`);
  for (const r of report.refused) out.push(`line ${r.line}: ${r.field}: ${r.message}`);
  for (const s of report.skipped) out.push(`line ${s.line}: skipped: ${s.email}: ${s.reason}`);
  for (const f of report.mailFailures) out.push(`line ${f.line}: email not sent: ${f.email}: ${f.message}`);
  return out.join('\n') + '\n';
}

/** One line per refused, skipped or unmailed line of the file, in line order: line, outcome, field, email, message. */
export function importReportCsv(report: Pick<ImportReport, 'refused' | 'skipped' | 'mailFailures'>): string {
  const rows: [number, string, string, string, string][] = [
    ...report.refused.map((r): [number, string, string, string, string] => [r.line, 'refused', r.field, '', r.message]),
    ...report.skipped.map((s): [number, string, string, string, string] => [s.line, 'skipped', 'email', s.email, s.reason]),
    ...report.mailFailures.map((f): [number, string, string, string, string] => [f.line, 'email not sent', 'email', f.email, f.message]),
  ].sort((a, b) => a[0] - b[0]);
  return ['line,outcome,field,email,message', ...rows.map((r) => r.map((v) => csvCell(String(v))).join(','))].join('\r\n') + '\r\n';
}
