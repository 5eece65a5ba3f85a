/**
 * The email that tells a person the FIDO Alliance has reported a security problem with the model of one of their
 * passkeys or security keys, what that means under the organisation's authenticator policy, and what to do. Best
 * effort, like the other notices: a mail server that is down is logged, and the audit log still has the event.
 */
import type { AuthenticatorStatus } from '@simplewebauthn/server';
import type { Config } from '../config/index.js';
import type { Authenticator, User } from '../db/schema.js';
import type { AuthenticatorPolicy } from '../webauthn/authenticatorPolicy.js';
import { formatTime } from '../views/layout.js';
import type { Mailer } from './mailer.js';
import { compromisedWords } from '../webauthn/policyInWords.js';

/** What the policy does to such a passkey, in the person's words. */
export function compromisedConsequence(action: AuthenticatorPolicy['compromised']): string {
  return action === 'refuse' ? 'It can no longer be used to sign in.' : 'It no longer counts for services that need the highest level of assurance (AAL3).';
}

export interface CompromisedModel {
  /** The model's name from the metadata. */
  model: string;
  status: AuthenticatorStatus;
}

/** Send the notice; false (and a warning in the log) when it could not be sent. */
export async function sendModelCompromisedNotice(
  deps: { mailer: Mailer; config: Pick<Config, 'organisation' | 'raContactUrl'>; log: { warn(obj: object, msg: string): void } },
  user: Pick<User, 'email' | 'display_name'>,
  passkey: Pick<Authenticator, 'name' | 'created_at'>,
  compromised: CompromisedModel & { action: AuthenticatorPolicy['compromised'] },
): Promise<boolean> {
  const { organisation, raContactUrl } = deps.config;
  const what = compromisedWords(compromised.status);
  try {
    await deps.mailer.send({
      to: user.email,
      subject: `A security problem was reported with one of your security keys or passkeys`,
      text: `Hello ${user.display_name},

The FIDO Alliance, which certifies security keys and passkeys, has reported a security problem with one model: ${what}. It affects one of the passkeys on your ${organisation} profile:

  "${passkey.name}" (${compromised.model}), added ${formatTime(passkey.created_at)}

${compromisedConsequence(compromised.action)}

What to do: contact your registration authority to get a new security key${raContactUrl ? ` (${raContactUrl})` : ''}. Once you have it, remove the old one from your profile.
`,
    });
    return true;
  } catch (err) {
    deps.log.warn({ code: (err as { code?: string }).code }, 'compromised-model notice not sent');
    return false;
  }
}
