/**
 * The email that tells a person an authenticator was added to their profile, whoever added it: they themselves
 * (settings, self-service) or they through a link, code or email a registration authority agent or the command line
 * issued. Someone who did not do it learns at once. Sent after the authenticator is stored and best effort: a mail
 * server that is down does not undo the authenticator; the failure is logged.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config/index.js';
import type { User } from '../db/schema.js';
import { CODE_LENGTH, type EnrolmentMethod } from '../flows/enrolment/invites.js';
import { formatTime } from '../views/layout.js';
import type { Mailer } from './mailer.js';

export interface AddedAuthenticator {
  /** What it is, as people say it: "passkey", "authenticator app", "NHS.net Connect account". */
  what: string;
  /** The name it was given, when it has one the person chose. */
  name?: string;
  /** How it was added, as a sentence: see {@link addedBy}. */
  how?: string;
}

/** How a passkey set up through an enrolment link or code was issued, as a sentence for the notice. */
export function addedBy(method: EnrolmentMethod | undefined): string {
  switch (method) {
    case 'code':
      return `It was set up with a ${CODE_LENGTH}-character code from your registration authority.`;
    case 'email':
      return 'It was set up with the enrolment email your registration authority sent you.';
    case 'cli':
      return 'It was set up with an enrolment link from your administrator.';
    default:
      return 'It was set up with an enrolment link from your registration authority.';
  }
}

/** Send the notice; false (and a warning in the log) when it could not be sent. */
export async function sendAuthenticatorAddedNotice(
  deps: { mailer: Mailer; config: Pick<Config, 'organisation'>; log: FastifyBaseLogger },
  user: Pick<User, 'email' | 'display_name'>,
  added: AddedAuthenticator,
  at: number,
): Promise<boolean> {
  const { organisation } = deps.config;
  const details = [added.name ? `It is named "${added.name}".` : '', added.how ?? ''].filter(Boolean).join(' ');
  try {
    await deps.mailer.send({
      to: user.email,
      subject: `An authenticator was added to your ${organisation} profile`,
      text: `Hello ${user.display_name},

A ${added.what} was added to your ${organisation} profile at ${formatTime(at)}.${details ? `\n${details}` : ''}

If this was not you, contact your registration authority straight away.
`,
    });
    return true;
  } catch (err) {
    deps.log.warn({ code: (err as { code?: string }).code }, 'authenticator-added notice not sent');
    return false;
  }
}
