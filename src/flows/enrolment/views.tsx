import type { Config } from '../../config/index.js';
import type { User } from '../../db/schema.js';
import type { FieldError } from '../../errors.js';
import { CsrfField, ErrorSummary, Layout, NO_SCRIPT_MESSAGE, NoScript, PasskeySetUpFields, StatusRegion } from '../../views/layout.js';
import { describeDuration } from '../../views/describeDuration.js';

export function EnrolPage(props: { config: Config; csrfToken: string; user: User; noScript?: boolean; securityKey?: boolean }) {
  if (props.securityKey) return <EnrolSecurityKeyPage {...props} />;
  return (
    <Layout title="Set up your passkey" rpName={props.config.rpName} csrfToken={props.csrfToken} page="enrol">
      <h1>Set up your passkey</h1>
      <ErrorSummary message={props.noScript ? NO_SCRIPT_MESSAGE : null} />
      <StatusRegion />
      <NoScript />
      <p>
        <strong>{props.config.organisation}</strong> has asked you to set up a passkey for the account of <strong>{props.user.display_name}</strong> (
        {props.user.email}). You will use it to sign in instead of a password.
      </p>
      <h2>Before you start</h2>
      <ul>
        <li>Your device needs a screen lock: fingerprint, face, PIN, passcode or pattern.</li>
        <li>To use a phone or tablet, turn on Bluetooth on both devices.</li>
        <li>Only set up a passkey on a personal or trusted device.</li>
      </ul>
      <details>
        <summary>On Windows with Windows Hello</summary>
        <p>
          Windows offers to save the passkey with Windows Hello. To save it on your phone instead, select "Change" next to "This will be saved to your Windows
          device", then "iPhone, iPad or Android device", and scan the QR code. A device already registered with Windows Hello cannot register a second passkey:
          use a phone, tablet or security key.
        </p>
      </details>
      <form id="enrol-form" method="post" novalidate>
        <CsrfField token={props.csrfToken} />
        <PasskeySetUpFields hint={'For example "Work laptop" or "My iPhone". You will see this name in your settings.'} />
      </form>
      <p>If it does not work, you can try again: this link stays valid until your passkey is set up or the link expires.</p>
    </Layout>
  );
}

/** A link or code for an AAL3 security key: only a security key with a PIN, whose make and model it confirms. */
function EnrolSecurityKeyPage(props: { config: Config; csrfToken: string; user: User; noScript?: boolean }) {
  return (
    <Layout title="Register your security key" rpName={props.config.rpName} csrfToken={props.csrfToken} page="enrol">
      <h1>Register your security key</h1>
      <ErrorSummary message={props.noScript ? NO_SCRIPT_MESSAGE : null} />
      <StatusRegion />
      <NoScript />
      <p>
        <strong>{props.config.organisation}</strong> has asked you to register a security key for the account of <strong>{props.user.display_name}</strong> (
        {props.user.email}). It gives the highest level of sign-in (AAL3), which some services, such as clinical systems, need.
      </p>
      <h2>Before you start</h2>
      <ul>
        <li>Have the FIDO2 security key your registration authority gave you (for example a YubiKey, Google Titan or Token2 key).</li>
        <li>When asked, plug it in or hold it to your device, enter its PIN and touch it. If it has no PIN yet, your browser asks you to set one.</li>
        <li>If your browser asks whether to share your security key’s make and model, allow it: that is how {props.config.organisation} confirms it is a key it trusts.</li>
        <li>Passkeys saved on a phone, computer or password manager can’t be used here.</li>
      </ul>
      <form id="enrol-form" method="post" novalidate>
        <CsrfField token={props.csrfToken} />
        <div class="field">
          <label for="name">
            Name your security key <span class="hint">For example "Blue YubiKey". You will see this name in your settings.</span>
          </label>
          <input type="text" id="name" name="name" maxLength={64} />
        </div>
        <input type="hidden" name="placement" value="security-key" />
        <button type="submit">Register security key</button>
      </form>
      <p>If it does not work, you can try again: this link stays valid until your security key is registered or the link expires.</p>
    </Layout>
  );
}

/** Seed 003: the person enters the code an agent read out, with their email address. */
export function EnrolCodePage(props: {
  config: Config;
  csrfToken: string;
  values: { email: string; code: string };
  errors: FieldError[];
  message?: string | null;
  code?: string;
}) {
  const error = (field: string) => props.errors.find((e) => e.field === field);
  return (
    <Layout title="Enter your enrolment code" rpName={props.config.rpName} csrfToken={props.csrfToken} page="enrol-code">
      <h1>Enter your enrolment code</h1>
      <ErrorSummary message={props.message ?? null} fields={props.errors} />
      {props.code ? <p data-error-code={props.code}></p> : null}
      <p>
        Your registration authority agent gave you a 9-character code to set up a passkey for {props.config.organisation}. Codes work for {describeDuration(props.config.enrolmentCodeSeconds)} after they are
        generated: enter it straight away.
      </p>
      <form method="post" action="/enrol" novalidate>
        <CsrfField token={props.csrfToken} />
        <div class={`field${error('email') ? ' field-error' : ''}`}>
          <label for="email">Email address</label>
          {error('email') ? (
            <p class="error-message" id="email-error">
              <span class="visually-hidden">Error: </span>
              {error('email')!.message}
            </p>
          ) : null}
          <input type="email" id="email" name="email" value={props.values.email} autoComplete="email" maxLength={254} aria-invalid={error('email') ? 'true' : undefined} />
        </div>
        <div class={`field${error('code') ? ' field-error' : ''}`}>
          <label for="code">
            Enrolment code<span class="hint">9 letters and numbers, for example K7Q-M2P-X9R. Capitals and dashes do not matter.</span>
          </label>
          {error('code') ? (
            <p class="error-message" id="code-error">
              <span class="visually-hidden">Error: </span>
              {error('code')!.message}
            </p>
          ) : null}
          <input
            type="text"
            id="code"
            name="code"
            value={props.values.code}
            autoComplete="one-time-code"
            autoCapitalize="characters"
            spellcheck={false}
            maxLength={20}
            class="code-input"
            aria-invalid={error('code') ? 'true' : undefined}
          />
        </div>
        <button type="submit">Continue</button>
      </form>
    </Layout>
  );
}

/** After registration from a link or code (seed 000: "you'll see a confirmation screen"). */
export function EnrolledPage(props: { config: Config; csrfToken: string; user: User; securityKey?: boolean }) {
  // A security key registered from an agent's "Security key (AAL3)" link is unplugged and carried: the person
  // needs to hear that it is the key, not their phone or computer, that signs them in at the highest level.
  const title = props.securityKey ? 'Your security key is registered' : 'Your passkey is set up';
  return (
    <Layout title={title} rpName={props.config.rpName} csrfToken={props.csrfToken} signedIn={{ displayName: props.user.display_name }}>
      <div class="panel-confirmation" role="status">
        <h1>{title}</h1>
        <p>
          {props.securityKey ? (
            <>
              {props.user.display_name}, you can now sign in to {props.config.organisation} with your security key. It gives the highest level of sign-in (AAL3),
              which some services, such as clinical systems, need.
            </>
          ) : (
            <>
              {props.user.display_name}, you can now sign in to {props.config.organisation} with your passkey.
            </>
          )}
        </p>
      </div>
      {props.securityKey ? (
        <p>Next time, choose “Sign in with a passkey”, then plug in your security key (or hold it to your device), enter its PIN and touch it. Keep it with you.</p>
      ) : (
        <p>Next time, choose “Sign in with a passkey” and use your fingerprint, face, PIN or screen lock.</p>
      )}
      <p>
        <a href="/settings">Go to your Login and security settings</a>
      </p>
    </Layout>
  );
}
