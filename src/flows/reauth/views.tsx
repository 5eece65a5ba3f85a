import type { Config } from '../../config/index.js';
import type { User } from '../../db/schema.js';
import type { FieldError } from '../../errors.js';
import { CsrfField, ErrorSummary, Field, invalidProps, Layout, NoScript, StatusRegion } from '../../views/layout.js';

export function ReauthPage(props: {
  config: Config;
  csrfToken: string;
  user: User;
  next: string;
  hasPasskey?: boolean;
  /** The password form, when the person may confirm with their password: with an app's code, or on its own (passwordStanding). */
  password?: 'with-app' | 'alone';
  /** Providers to sign in again with, when a linked work account is all the person has (linkedAccountReauthProviders). */
  linkedProviders?: { id: string; name: string }[];
  /** A service needs AAL3: the names of the person's security keys that give it (none: they need one from their RA). */
  securityKeys?: string[];
  error?: string;
  /** What was wrong with the password form, said at its field and linked from the summary. */
  fields?: FieldError[];
}) {
  if (props.securityKeys) return <SecurityKeyReauthPage {...props} securityKeys={props.securityKeys} />;
  const hasPasskey = props.hasPasskey ?? true;
  const linked = props.linkedProviders ?? [];
  const fields = props.fields ?? [];
  return (
    <Layout title="Confirm it is you" rpName={props.config.rpName} csrfToken={props.csrfToken} page="reauth" signedIn={{ displayName: props.user.display_name }} data={{ next: props.next }}>
      <h1>Confirm it is you</h1>
      <ErrorSummary message={props.error ?? null} fields={fields} />
      <StatusRegion />
      {hasPasskey ? (
        <>
          <NoScript />
          <p>
            {props.next.startsWith('/interaction/')
              ? 'The service you are signing in to needs a stronger sign-in than the one you used. Use one of your passkeys to continue.'
              : 'For your security, use one of your passkeys before you change how you sign in.'}
          </p>
          <ReauthActions label="Continue with a passkey" />
        </>
      ) : null}
      {props.password === 'with-app' ? (
        <form method="post" action={`/reauth/password?next=${encodeURIComponent(props.next)}`} novalidate>
          <CsrfField token={props.csrfToken} />
          <h2>{hasPasskey ? 'Or use your password and authenticator app' : 'Use your password and authenticator app'}</h2>
          <Field id="password" label="Password" errors={fields}>
            {(invalid) => <input type="password" id="password" name="password" autoComplete="current-password" maxLength={256} {...invalidProps('password', invalid)} />}
          </Field>
          <Field id="code" label="Code from your authenticator app" errors={fields}>
            {(invalid) => <input type="text" id="code" name="code" inputMode="numeric" autoComplete="one-time-code" maxLength={12} class="code-input" {...invalidProps('code', invalid)} />}
          </Field>
          <button type="submit" class="secondary">
            Continue
          </button>
        </form>
      ) : props.password === 'alone' ? (
        // Offered only to someone with no passkey or app (the password kind steps up as a fallback).
        <form method="post" action={`/reauth/password?next=${encodeURIComponent(props.next)}`} novalidate>
          <CsrfField token={props.csrfToken} />
          <h2>Use your password</h2>
          <Field id="password" label="Password" errors={fields}>
            {(invalid) => <input type="password" id="password" name="password" autoComplete="current-password" maxLength={256} {...invalidProps('password', invalid)} />}
          </Field>
          <button type="submit" class="secondary">
            Continue
          </button>
        </form>
      ) : null}
      {linked.length ? (
        <>
          <p>For your security, sign in again with your work account before you change how you sign in.</p>
          <div class="actions">
            {linked.map((p) => (
              <a class="button" href={`/reauth/linked/${p.id}?next=${encodeURIComponent(props.next)}`}>
                Sign in again with {p.name}
              </a>
            ))}
            <a class="button secondary" href="/settings">
              Cancel
            </a>
          </div>
        </>
      ) : null}
      {!hasPasskey && !props.password && !linked.length ? (
        <p>
          You have no way to confirm it is you on this page. Sign out at the top of the page, sign in again, then try again.
        </p>
      ) : null}
    </Layout>
  );
}

/** Step-up for a service that needs AAL3: which of the person's security keys qualify, or how to get one. */
function SecurityKeyReauthPage(props: { config: Config; csrfToken: string; user: User; next: string; securityKeys: string[]; error?: string }) {
  const keys = props.securityKeys;
  return (
    <Layout
      title="Confirm it is you with your security key"
      rpName={props.config.rpName}
      csrfToken={props.csrfToken}
      page="reauth"
      signedIn={{ displayName: props.user.display_name }}
      data={{ next: props.next, need: '3' }}
    >
      <h1>Confirm it is you with your security key</h1>
      <ErrorSummary message={props.error ?? null} />
      <StatusRegion />
      {keys.length ? (
        <>
          <NoScript />
          <p>The service you are signing in to needs the highest level of sign-in (AAL3). Use {keys.length === 1 ? 'your security key' : 'one of these security keys'}:</p>
          <ul data-aal3-keys>
            {keys.map((name) => (
              <li>{name}</li>
            ))}
          </ul>
          <p>Plug it in or hold it to your device, enter its PIN and touch it.</p>
          <ReauthActions label="Continue with your security key" />
        </>
      ) : (
        <>
          <p data-aal3-keys="none">
            The service you are signing in to needs the highest level of sign-in (AAL3), which only a security key approved by {props.config.organisation} gives. You
            don’t have one yet.
          </p>
          <p>Contact your registration authority (RA): they can issue you a security key and help you register it.</p>
          <p>
            <a href="/settings">Go to your Login and security settings</a>
          </p>
        </>
      )}
    </Layout>
  );
}

/** The page script's button (reauth-button starts the ceremony) and the way out. */
function ReauthActions(props: { label: string }) {
  return (
    <div class="actions">
      <button type="button" id="reauth-button">
        {props.label}
      </button>
      <a class="button secondary" href="/settings">
        Cancel
      </a>
    </div>
  );
}
