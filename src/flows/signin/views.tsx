import type { Config } from '../../config/index.js';
import { CsrfField, ErrorSummary, Layout, NO_SCRIPT_MESSAGE, NoScript, StatusRegion } from '../../views/layout.js';
import { AnotherDeviceSteps } from './anotherDeviceSteps.js';
import { signInQuery } from './signInQuery.js';

export function SignInPage(props: {
  config: Config;
  csrfToken: string;
  message?: string;
  noScript?: boolean;
  next?: string;
  /** Prefill for the email fields (an OpenID Connect service's login_hint). */
  emailHint?: string;
}) {
  return (
    <Layout title="Sign in" rpName={props.config.rpName} csrfToken={props.csrfToken} page="signin" data={props.next ? { next: props.next } : undefined}>
      <h1>Sign in</h1>
      <ErrorSummary message={props.noScript ? NO_SCRIPT_MESSAGE : null} />
      <StatusRegion message={props.message} />
      <NoScript />
      <p>Use the passkey on this device, on your phone or tablet, or on your security key. You will be asked for your fingerprint, face, PIN or screen lock.</p>
      <button type="button" id="passkey-signin">
        Sign in with a passkey
      </button>
      <p class="divider">Or enter your email address</p>
      <form id="email-form" method="post" action="/signin" novalidate>
        <CsrfField token={props.csrfToken} />
        <div class="field">
          <label for="email">Email address</label>
          <input type="email" id="email" name="email" autocomplete="username webauthn" spellcheck={false} required value={props.emailHint ?? ''}
            data-required-message="Enter your email address" data-format-message="Enter an email address in the correct format, like name@example.com"
          />
        </div>
        <button type="submit" class="secondary">
          Continue
        </button>
      </form>
      {props.config.upstreamProviders.map((p) => (
        <p key={p.id}>
          <a class="button secondary" href={`/signin/linked/${p.id}${signInQuery({ next: props.next })}`}>
            Sign in with {p.name}
          </a>
        </p>
      ))}
      {props.config.passwordSignIn === 'alone' ? (
        // Seed 004's words; the page behind the link also takes an authenticator app's code.
        <>
          <p>If you do not have a passkey set up on another device, you can use your password instead.</p>
          <p>
            <a href={`/signin/password${signInQuery({ next: props.next, email: props.emailHint })}`}>Use your password instead</a>
          </p>
        </>
      ) : (
        <p>
          <a href={`/signin/password${signInQuery({ next: props.next, email: props.emailHint })}`}>Sign in with a password and authenticator app</a>
        </p>
      )}
      <p>
        No passkey or authenticator app yet? <a href="/add-authenticator">Add an authenticator to your profile</a>
      </p>
      <details>
        <summary>Your passkey is on another device</summary>
        <AnotherDeviceSteps />
      </details>
      <p>
        <a href={`/signin/help${signInQuery({ next: props.next, email: props.emailHint })}`}>Can't use your passkey?</a>
      </p>
      {props.config.signup === 'open' ? (
        <p>
          New here? <a href="/signup">Create an account</a>
        </p>
      ) : (
        <p>Accounts are created by invitation. If you have an invite link, open it to set up your passkey.</p>
      )}
    </Layout>
  );
}
