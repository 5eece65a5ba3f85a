/** The self-service page that adds a passkey (src/strategies/passkey/selfServiceRoutes.tsx). */
import { ErrorSummary, StatusRegion, NoScript, CsrfField, PasskeySetUpFields } from '../../views/layout.js';
import { Page, type Base } from '../../flows/selfService/views.js';

export function PasskeyPage(m: Base & { flowId: string }) {
  return (
    <Page {...m} title="Add a passkey" page="self-service-passkey" back={`/add-authenticator/${m.flowId}/choose`} step="set-up">
      <h1>Add a passkey</h1>
      <ErrorSummary />
      <StatusRegion />
      <NoScript />
      <ul>
        <li>Your device needs a screen lock: fingerprint, face, PIN, passcode or pattern.</li>
        <li>To use a phone or tablet with this computer, turn on Bluetooth on both.</li>
        <li>
          A Windows device already registered with Windows Hello cannot register a passkey as well: choose “Another phone or tablet” and scan the QR code with an
          iPhone, iPad or Android phone instead.
        </li>
      </ul>
      <form id="self-service-passkey-form" method="post" action={`/add-authenticator/${m.flowId}/passkey`} novalidate>
        <CsrfField token={m.csrfToken} />
        <PasskeySetUpFields hint={'For example "Work laptop" or "My iPhone".'} />
      </form>
    </Page>
  );
}
