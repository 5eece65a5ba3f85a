import type { Config } from '../../config/index.js';
import type { User } from '../../db/schema.js';
import { CsrfField, ErrorSummary, Layout, NO_SCRIPT_MESSAGE, NoScript, PlacementChoice, StatusRegion } from '../../views/layout.js';

export function EnrolPage(props: { config: Config; csrfToken: string; user: User; noScript?: boolean }) {
  return (
    <Layout title="Set up your passkey" rpName={props.config.rpName} csrfToken={props.csrfToken} page="enrol">
      <h1>Set up your passkey</h1>
      <ErrorSummary message={props.noScript ? NO_SCRIPT_MESSAGE : null} />
      <StatusRegion />
      <NoScript />
      <p>
        This link sets up a passkey for <strong>{props.user.display_name}</strong> ({props.user.email}). You will use it to sign in instead of a password.
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
        <div class="field">
          <label for="name">
            Name your passkey <span class="hint">For example "Work laptop" or "My iPhone". You will see this name in your settings.</span>
          </label>
          <input type="text" id="name" name="name" maxLength={64} />
        </div>
        <PlacementChoice legend="Where do you want to save your passkey?" />
        <button type="submit">Set up passkey</button>
      </form>
      <p>If it does not work, you can try again: this link stays valid until your passkey is set up or the link expires.</p>
    </Layout>
  );
}
