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

/** What each compromising status (FIDO Metadata Service v3 §3.1.4) means, as a clause after "the FIDO Alliance has reported that". */
const STATUS_WORDS: Partial<Record<AuthenticatorStatus, string>> = {
  REVOKED: 'the model’s certification has been withdrawn',
  USER_VERIFICATION_BYPASS: 'the PIN or fingerprint check on this model can be bypassed',
  ATTESTATION_KEY_COMPROMISE: 'the key that proves this model is genuine has been compromised',
  USER_KEY_REMOTE_COMPROMISE: 'the keys this model holds can be extracted remotely',
  USER_KEY_PHYSICAL_COMPROMISE: 'the keys this model holds can be extracted by someone who has the device in hand',
};

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
  const what = STATUS_WORDS[compromised.status] ?? 'there is a security problem with this model';
  try {
    await deps.mailer.send({
      to: user.email,
      subject: `A security problem was reported with one of your security keys or passkeys`,
      text: `Hello ${user.display_name},

The FIDO Alliance, which certifies security keys and passkeys, has reported that ${what}. It affects one of the passkeys on your ${organisation} profile:

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
