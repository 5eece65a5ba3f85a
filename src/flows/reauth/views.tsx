import type { Config } from '../../config/index.js';
import type { User } from '../../db/schema.js';
import { CsrfField, ErrorSummary, Layout, NoScript, StatusRegion } from '../../views/layout.js';

export function ReauthPage(props: { config: Config; csrfToken: string; user: User; next: string; hasPasskey?: boolean; error?: string }) {
  const hasPasskey = props.hasPasskey ?? true;
  return (
    <Layout title="Confirm it is you" rpName={props.config.rpName} csrfToken={props.csrfToken} page="reauth" signedIn={{ displayName: props.user.display_name }} data={{ next: props.next }}>
      <h1>Confirm it is you</h1>
      <ErrorSummary message={props.error ?? null} />
      <StatusRegion />
      {hasPasskey ? (
        <>
          <NoScript />
          <p>
            {props.next.startsWith('/interaction/')
              ? 'The service you are signing in to needs a stronger sign-in than the one you used. Use one of your passkeys to continue.'
              : 'For your security, use one of your passkeys before you change how you sign in.'}
          </p>
          <div class="actions">
            <button type="button" id="reauth-button">
              Continue with a passkey
            </button>
            <a class="button secondary" href="/settings">
              Cancel
            </a>
          </div>
        </>
      ) : null}
      {props.user.password_hash ? (
        <form method="post" action={`/reauth/password?next=${encodeURIComponent(props.next)}`} novalidate>
          <CsrfField token={props.csrfToken} />
          <h2>{hasPasskey ? 'Or use your password and authenticator app' : 'Use your password and authenticator app'}</h2>
          <div class="field">
            <label for="password">Password</label>
            <input type="password" id="password" name="password" autoComplete="current-password" maxLength={256} />
          </div>
          <div class="field">
            <label for="code">Code from your authenticator app</label>
            <input type="text" id="code" name="code" inputMode="numeric" autoComplete="one-time-code" maxLength={12} class="code-input" />
          </div>
          <button type="submit" class="secondary">
            Continue
          </button>
        </form>
      ) : null}
    </Layout>
  );
}
