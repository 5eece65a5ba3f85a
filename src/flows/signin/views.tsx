import type { Config } from '../../config/index.js';
import { CsrfField, ErrorSummary, Layout, NO_SCRIPT_MESSAGE, NoScript, StatusRegion } from '../../views/layout.js';
import type { FieldError } from '../../errors.js';

export function SignInPage(props: {
  config: Config;
  csrfToken: string;
  message?: string;
  noScript?: boolean;
  next?: string;
  /** The password-and-app form was sent and refused: why, and what to show again. */
  passwordError?: string;
  passwordFields?: FieldError[];
  passwordEmail?: string;
  /** Prefill for the email fields (an OpenID Connect service's login_hint). */
  emailHint?: string;
}) {
  const fieldError = (field: string) => props.passwordFields?.find((f) => f.field === field);
  return (
    <Layout title="Sign in" rpName={props.config.rpName} csrfToken={props.csrfToken} page="signin" data={props.next ? { next: props.next } : undefined}>
      <h1>Sign in</h1>
      <ErrorSummary message={props.noScript ? NO_SCRIPT_MESSAGE : (props.passwordError ?? null)} fields={props.passwordFields} />
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
          <a class="button secondary" href={`/signin/linked/${p.id}${props.next ? `?next=${encodeURIComponent(props.next)}` : ''}`}>
            Sign in with {p.name}
          </a>
        </p>
      ))}
      <h2 id="password-signin">Sign in with a password and authenticator app</h2>
      <form id="password-form" method="post" action={`/signin/password${props.next ? `?next=${encodeURIComponent(props.next)}` : ''}`} novalidate>
        <CsrfField token={props.csrfToken} />
        <div class={`field${fieldError('pw-email') ? ' field-error' : ''}`}>
          <label for="pw-email">Email address</label>
          <input type="email" id="pw-email" name="email" autocomplete="username" spellcheck={false} value={props.passwordEmail ?? props.emailHint ?? ''} maxLength={254} />
        </div>
        <div class={`field${fieldError('password') ? ' field-error' : ''}`}>
          <label for="password">Password</label>
          <input type="password" id="password" name="password" autocomplete="current-password" maxLength={256} />
        </div>
        <div class={`field${fieldError('code') ? ' field-error' : ''}`}>
          <label for="code">
            Code from your authenticator app<span class="hint">The 6-digit code the app shows now.</span>
          </label>
          <input type="text" id="code" name="code" inputMode="numeric" autocomplete="one-time-code" maxLength={12} class="code-input" />
        </div>
        <button type="submit" class="secondary">
          Sign in
        </button>
      </form>
      <p>
        No passkey or authenticator app yet? <a href="/add-authenticator">Add an authenticator to your profile</a>
      </p>
      <details>
        <summary>Your passkey is on another device</summary>
        <ol class="steps">
          <li>Enter your email address and select Continue. A pop-up will ask you to sign in with your passkey.</li>
          <li>Select "Use a different phone or tablet" or similar.</li>
          <li>Scan the QR code using the device that has your passkey. Bluetooth must be on.</li>
          <li>Follow the instructions on your device to finish signing in.</li>
        </ol>
        <p>On iPhone or iPad, make sure "Password AutoFill" and "Passkey AutoFill" are turned on in your device settings.</p>
      </details>
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
