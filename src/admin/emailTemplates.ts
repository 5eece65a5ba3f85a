/**
 * Enrolment email templates (seed 003: "select a specific email template or
 * the default template"). Subject and body are plain text with placeholders;
 * the default template always exists and can be edited but not deleted.
 */
import type { EmailTemplate } from '../db/schema.js';
import type { Store } from '../db/store.js';
import type { FieldError } from '../errors.js';

export const PLACEHOLDERS = {
  name: 'The person’s name',
  link: 'Their single-use enrolment link',
  expiry: 'When the link stops working',
  organisation: 'Your organisation’s name',
} as const;

export type PlaceholderValues = Record<keyof typeof PLACEHOLDERS, string>;

export const DEFAULT_TEMPLATE_ID = 'default';

const DEFAULT_SUBJECT = 'Set up your passkey for {{organisation}}';
const DEFAULT_BODY = `Hello {{name}},

{{organisation}} has asked you to set up a passkey. You will use it to sign in instead of a password.

Open this link on the device you want to use, or on a computer with your phone nearby, and follow the steps:

{{link}}

The link works once and stops working at {{expiry}}. If it has expired, ask the person who sent it for a new one.

If you were not expecting this email, you can ignore it: nothing changes until the link is used.
`;

const PLACEHOLDER = /\{\{\s*([a-zA-Z_]+)\s*\}\}/g;

export function renderTemplate(text: string, values: PlaceholderValues): string {
  return text.replace(PLACEHOLDER, (whole, key: string) => (key in values ? values[key as keyof PlaceholderValues] : whole));
}

/** Problems with a template as an agent typed it, with the field each belongs to. */
export function checkTemplate(fields: { name: string; subject: string; body: string }): FieldError[] {
  const problems: FieldError[] = [];
  const unknown = (text: string) => [...text.matchAll(PLACEHOLDER)].map((m) => m[1]!).filter((k) => !(k in PLACEHOLDERS));
  if (!fields.name.trim()) problems.push({ field: 'name', message: 'Enter a name for the template' });
  else if (fields.name.trim().length > 100) problems.push({ field: 'name', message: 'The name must be 100 characters or fewer' });
  if (!fields.subject.trim()) problems.push({ field: 'subject', message: 'Enter a subject' });
  else if (fields.subject.length > 200) problems.push({ field: 'subject', message: 'The subject must be 200 characters or fewer' });
  else if (/[\r\n]/.test(fields.subject)) problems.push({ field: 'subject', message: 'The subject must be one line' });
  else if (unknown(fields.subject).length) problems.push({ field: 'subject', message: `The subject uses an unknown placeholder: {{${unknown(fields.subject)[0]}}}` });
  if (!fields.body.trim()) problems.push({ field: 'body', message: 'Enter the email text' });
  else if (fields.body.length > 10_000) problems.push({ field: 'body', message: 'The email text must be 10,000 characters or fewer' });
  else if (unknown(fields.body).length) problems.push({ field: 'body', message: `The email text uses an unknown placeholder: {{${unknown(fields.body)[0]}}}` });
  else if (!/\{\{\s*link\s*\}\}/.test(fields.body)) problems.push({ field: 'body', message: 'The email text must include {{link}}: without it the person cannot set up a passkey' });
  return problems;
}

/** Create the default template when it is missing (first start, or a new database). */
export async function ensureDefaultTemplate(store: Store, now: number): Promise<void> {
  if (await store.emailTemplates.findById(DEFAULT_TEMPLATE_ID)) return;
  const template: EmailTemplate = {
    id: DEFAULT_TEMPLATE_ID,
    name: 'Default',
    subject: DEFAULT_SUBJECT,
    body: DEFAULT_BODY,
    is_default: 1,
    created_at: now,
    updated_at: now,
    updated_by: null,
  };
  // Two instances starting at once: the primary key lets one win; the other's insert fails harmlessly.
  await store.emailTemplates.insert(template).catch(async (err: unknown) => {
    if (!(await store.emailTemplates.findById(DEFAULT_TEMPLATE_ID))) throw err;
  });
}

export function sampleValues(organisation: string): PlaceholderValues {
  return { name: 'Ada Lovelace', link: 'https://example.org/enrol/…', expiry: '22 November 2026 14:30 UTC', organisation };
}
