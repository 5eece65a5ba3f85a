import type { Config } from '../../config/index.js';
import type { User } from '../../db/schema.js';
import { CsrfField, ErrorSummary, Layout, NO_SCRIPT_MESSAGE, NoScript, PlacementChoice, StatusRegion } from '../../views/layout.js';
import { describeDuration } from '../../views/describeDuration.js';

/**
 * "Set up a passkey" after a sign-in without one: the three places of seed 004 (this device; another phone or
 * tablet by QR code; a security key, which is also Windows Hello's "external security key") and "Not now". The
 * bundle first lets the browser's password manager save a passkey without a dialog where it can (conditional
 * create); "Not now" is a plain form, so the way on never needs script.
 */
export function PasskeyUpgradePage(props: { config: Config; csrfToken: string; user: User; next: string; noScript?: boolean }) {
  const { config } = props;
  return (
    <Layout
      title="Set up a passkey"
      rpName={config.rpName}
      csrfToken={props.csrfToken}
      page="passkey-upgrade"
      signedIn={{ displayName: props.user.display_name }}
      data={{ next: props.next }}
    >
      <h1>Set up a passkey</h1>
      <ErrorSummary message={props.noScript ? NO_SCRIPT_MESSAGE : null} />
      <StatusRegion />
      <p>
        Next time, sign in with a passkey instead. You will use your fingerprint, face, PIN, passcode or pattern, the way you unlock your device, and
        you will not need to type anything.
      </p>
      <p>Passkeys give the strongest protection against phishing and hacking: each one is linked to {config.rpName}, so fraudulent websites cannot steal it.</p>
      <div id="passkey-upgrade-choice">
        <NoScript />
        <p>Only set up a passkey on a personal or trusted device.</p>
        <form id="passkey-upgrade-form" method="post" novalidate>
          <CsrfField token={props.csrfToken} />
          <PlacementChoice legend="Where do you want to save your passkey?" />
          <button type="submit">Set up a passkey</button>
        </form>
      </div>
      <form method="post" action="/passkey-upgrade/skip" class="skip-form">
        <CsrfField token={props.csrfToken} />
        <input type="hidden" name="next" value={props.next} />
        <button type="submit" class="secondary">
          Not now
        </button>
      </form>
      <p class="hint">
        If you choose not now, we will ask again after {describeDuration(config.passkeyPromptSeconds)}. You can set up a passkey at any time in your Login
        and security settings.
      </p>
    </Layout>
  );
}
