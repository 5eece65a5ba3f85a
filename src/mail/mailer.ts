/**
 * Outgoing mail. One interface, three kinds:
 * - `smtp`: nodemailer over LATCHKEY_SMTP_URL;
 * - `outbox`: no SMTP configured outside production: each message is written
 *   to LATCHKEY_OUTBOX_DIR and listed at /dev/outbox, so a person trying
 *   Latchkey can follow the links;
 * - `none`: production without SMTP: sending fails with `mail_unavailable`.
 */
export interface OutgoingMail {
  to: string;
  subject: string;
  /** Plain text body. */
  text: string;
}

export interface Mailer {
  readonly kind: 'smtp' | 'outbox' | 'none';
  /** Resolves once the server (or outbox) accepted the message; rejects with AppError `mail_unavailable` otherwise. */
  send(mail: OutgoingMail): Promise<void>;
  close(): Promise<void>;
}
