/** The self-service pages that set up an authenticator app (src/strategies/totp/selfServiceRoutes.tsx). */
import type { FieldError } from '../../errors.js';
import { ErrorSummary, CsrfField, Field, CodeField } from '../../views/layout.js';
import { ConfirmOnlyYouPage, Page, type Base } from '../../flows/selfService/views.js';

export function PasswordPage(m: Base & { flowId: string; errors: FieldError[] }) {
  return (
    <Page {...m} title="Create a password" back={`/add-authenticator/${m.flowId}/app`} step="set-up">
      <h1>Create a password</h1>
      <ErrorSummary fields={m.errors} />
      <p>You will use this password with a code from your authenticator app. It must be at least 8 characters and not a common password.</p>
      <form method="post" action={`/add-authenticator/${m.flowId}/app/password`} novalidate>
        <CsrfField token={m.csrfToken} />
        <Field id="password" label="Password" errors={m.errors}>
          <input type="password" id="password" name="password" autoComplete="new-password" maxLength={256} />
        </Field>
        <Field id="confirmPassword" label="Confirm password" errors={m.errors}>
          <input type="password" id="confirmPassword" name="confirmPassword" autoComplete="new-password" maxLength={256} />
        </Field>
        <button type="submit">Continue</button>
      </form>
    </Page>
  );
}

export function ScanPage(m: Base & { flowId: string; qrSvgDataUri: string; secret: string; errors: FieldError[] }) {
  return (
    <Page {...m} title="Set up your authenticator app" back={`/add-authenticator/${m.flowId}/app/password`} step="set-up">
      <h1>Set up your authenticator app</h1>
      <ErrorSummary fields={m.errors} />
      <ol class="steps">
        <li>Open your authenticator app and add an account (often a + button).</li>
        <li>Scan this QR code with the app.</li>
        <li>Enter the 6-digit code the app shows.</li>
      </ol>
      <img src={m.qrSvgDataUri} alt="QR code to scan with your authenticator app" width={200} height={200} class="qr" />
      <details>
        <summary>Cannot scan the QR code?</summary>
        <p>Enter this key in your app instead (time-based, 6 digits):</p>
        <p>
          <code class="totp-secret" id="totp-secret">
            {m.secret}
          </code>
        </p>
      </details>
      <form method="post" action={`/add-authenticator/${m.flowId}/app/verify`} novalidate>
        <CsrfField token={m.csrfToken} />
        <CodeField label="Code from your authenticator app" errors={m.errors} />
        <button type="submit">Submit</button>
      </form>
    </Page>
  );
}

/** `next.service`: a service's step-up sent them here, and `next.href` goes back to it. */

export function AppConfirmPage(m: Base & { flowId: string; errors: FieldError[] }) {
  return (
    <ConfirmOnlyYouPage
      {...m}
      title="Register an authenticator app"
      action={`/add-authenticator/${m.flowId}/app`}
      confirmLabel="I confirm only I have access to this authenticator app"
    >
      <>
        <p>Make sure an authenticator app, such as Microsoft Authenticator or Google Authenticator, is installed on your phone.</p>
        <p>When you sign in with it, you use both a password and a code from the app. Next you create the password, then scan a QR code with the app.</p>
      </>
    </ConfirmOnlyYouPage>
  );
}
