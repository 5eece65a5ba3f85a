import type { Config } from '../../config/index.js';
import { CsrfField, ErrorSummary, Layout, NO_SCRIPT_MESSAGE, NoScript, PlacementChoice, StatusRegion } from '../../views/layout.js';

export function SignUpPage(props: { config: Config; csrfToken: string; noScript?: boolean }) {
  return (
    <Layout title="Create an account" rpName={props.config.rpName} csrfToken={props.csrfToken} page="signup">
      <h1>Create an account</h1>
      <ErrorSummary message={props.noScript ? NO_SCRIPT_MESSAGE : null} />
      <StatusRegion />
      <NoScript />
      <p>You will sign in with a passkey instead of a password. To set up a passkey your device needs a screen lock: fingerprint, face, PIN, passcode or pattern.</p>
      <form id="signup-form" method="post" action="/signup" novalidate>
        <CsrfField token={props.csrfToken} />
        <div class="field">
          <label for="displayName">Your name</label>
          <input type="text" id="displayName" name="displayName" autocomplete="name" maxLength={100} required data-required-message="Enter your name" />
        </div>
        <div class="field">
          <label for="email">Email address</label>
          <input type="email" id="email" name="email" autocomplete="email" spellcheck={false} maxLength={254} required
            data-required-message="Enter your email address" data-format-message="Enter an email address in the correct format, like name@example.com"
          />
        </div>
        {/* Seed 002's "Name your device". Optional: left blank, the passkey is named after its provider (from its AAGUID). */}
        <div class="field">
          <label for="name">
            Name your device{' '}
            <span class="hint">
              For example "Work laptop" or "My iPhone". You will see this name in your settings. If you leave it blank, we use the name of your passkey
              provider, such as "iCloud Keychain", "Google Password Manager" or "Windows Hello".
            </span>
          </label>
          <input type="text" id="name" name="name" maxLength={64} autocomplete="off" />
        </div>
        <PlacementChoice legend="Where do you want to save your passkey?" />
        <button type="submit">Create account and set up a passkey</button>
      </form>
      <p>
        Already have an account? <a href="/signin">Sign in</a>
      </p>
    </Layout>
  );
}
