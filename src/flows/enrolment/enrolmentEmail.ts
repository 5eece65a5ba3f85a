/**
 * The enrolment email: a new single-use link sent to the person from a template. The console's "Email an enrolment
 * link" and bulk import's "send each new user an enrolment email" both send it from here.
 */
import type { Config } from '../../config/index.js';
import type { EmailTemplate, User } from '../../db/schema.js';
import type { Store } from '../../db/store.js';
import { appError } from '../../errors.js';
import type { Mailer } from '../../mail/mailer.js';
import { formatTime } from '../../views/layout.js';
import { renderTemplate, type PlaceholderValues } from '../../admin/emailTemplates.js';
import { issueInvite, type IssuedInvite, type IssueOptions } from './invites.js';

/** The template to send with: the one chosen when it still exists, else the default (which always exists). */
export async function findEnrolmentTemplate(store: Store, templateId: string | undefined): Promise<EmailTemplate> {
  const template = (templateId && (await store.emailTemplates.findById(templateId))) || (await store.emailTemplates.findDefault());
  if (!template) throw appError('validation_failed', 'Choose an email template.');
  return template;
}

/** Send `link` to the person with `template`; rejects (mail_unavailable) when the mail server did not take it. */
export async function sendEnrolmentEmail(
  deps: { config: Config; mailer: Mailer },
  template: EmailTemplate,
  user: Pick<User, 'display_name' | 'email'>,
  link: string,
  expiresAt: number,
): Promise<void> {
  const values: PlaceholderValues = { name: user.display_name, link, expiry: formatTime(expiresAt), organisation: deps.config.organisation };
  await deps.mailer.send({ to: user.email, subject: renderTemplate(template.subject, values), text: renderTemplate(template.body, values) });
}

/**
 * Issue a new link (revoking the person's earlier ones) and email it. When the mail is not sent the new link is
 * revoked before this rejects: a link nobody received must not stay usable.
 */
export async function issueEnrolmentEmail(
  deps: { store: Store; config: Config; mailer: Mailer },
  template: EmailTemplate,
  user: User,
  now: number,
  options: Omit<IssueOptions, 'method' | 'templateId'>,
): Promise<IssuedInvite> {
  const issued = await issueInvite(deps.store, deps.config, user, now, { ...options, method: 'email', templateId: template.id });
  try {
    await sendEnrolmentEmail(deps, template, user, issued.url, issued.expiresAt);
  } catch (err) {
    await deps.store.flows.revoke(issued.flowId, now);
    throw err;
  }
  return issued;
}
