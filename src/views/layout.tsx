/** The shared page layout and small components every page uses. */
import type { ComponentChildren } from 'preact';
import type { FieldError } from '../errors.js';

export interface PageContext {
  title: string;
  rpName: string;
  csrfToken: string;
  signedIn?: { displayName: string } | null;
  /** data-page tells the browser bundle which behaviour to attach. */
  page?: string;
}

export function Layout(props: PageContext & { children: ComponentChildren; data?: Record<string, string>; refreshSeconds?: number }) {
  const dataAttrs: Record<string, string> = {};
  for (const [k, v] of Object.entries(props.data ?? {})) dataAttrs[`data-${k}`] = v;
  return (
    <html lang="en">
      <head>
        <meta charSet="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="csrf-token" content={props.csrfToken} />
        {/* A page that follows work in progress (a bulk import) reloads itself: no script, so the strict CSP holds. */}
        {props.refreshSeconds ? <meta http-equiv="refresh" content={String(props.refreshSeconds)} /> : null}
        <title>{`${props.title} – ${props.rpName}`}</title>
        <link rel="icon" href="/assets/favicon.svg" type="image/svg+xml" />
        <link rel="stylesheet" href="/assets/app.css" />
        <script src="/assets/app.js" defer></script>
      </head>
      <body data-page={props.page ?? ''} {...dataAttrs}>
        <a class="skip-link" href="#main">
          Skip to main content
        </a>
        <header class="header">
          <div class="container header-inner">
            <a class="brand" href="/">
              {props.rpName}
            </a>
            {props.signedIn ? (
              <nav aria-label="Account">
                <a href="/settings">Login and security settings</a>
                <form method="post" action="/signout" class="inline">
                  <input type="hidden" name="_csrf" value={props.csrfToken} />
                  <button type="submit" class="link-button">
                    Sign out
                  </button>
                </form>
              </nav>
            ) : null}
          </div>
        </header>
        <main id="main" class="container" tabIndex={-1}>
          {props.children}
        </main>
      </body>
    </html>
  );
}

/** GOV.UK-style error summary: focused on load so screen readers announce it. */
export function ErrorSummary(props: { message?: string | null; fields?: FieldError[]; id?: string }) {
  const hidden = !props.message && !(props.fields && props.fields.length);
  return (
    <div class="error-summary" id={props.id ?? 'error-summary'} role="alert" tabIndex={-1} hidden={hidden} aria-labelledby="error-summary-title">
      <h2 class="error-summary-title" id="error-summary-title">
        There is a problem
      </h2>
      <p class="error-summary-body" data-error-message>
        {props.message ?? ''}
      </p>
      {props.fields && props.fields.length ? (
        <ul>
          {props.fields.map((f) => (
            <li>
              <a href={`#${f.field}`}>{f.message}</a>
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

/** Status messages the browser bundle fills in (success, progress). */
export function StatusRegion(props: { id?: string; message?: string | null }) {
  return (
    <div class="notice" id={props.id ?? 'status'} role="status" aria-live="polite" hidden={!props.message}>
      {props.message ?? ''}
    </div>
  );
}

export function CsrfField(props: { token: string }) {
  return <input type="hidden" name="_csrf" value={props.token} />;
}

export const NO_SCRIPT_MESSAGE = 'Passkeys need JavaScript. Turn on JavaScript in your browser settings, then reload this page.';

export function NoScript() {
  return (
    <noscript>
      <p class="warning">{NO_SCRIPT_MESSAGE}</p>
    </noscript>
  );
}

/** Three ways to place a passkey, as the seeds describe them (NHS login, broker portal). */
/** The passkey's name, where to save it, and the button: the fields of every page a person sets up a passkey on. */
export function PasskeySetUpFields(props: { hint: string }) {
  return (
    <>
      <div class="field">
        <label for="name">
          Name your passkey <span class="hint">{props.hint}</span>
        </label>
        <input type="text" id="name" name="name" maxLength={64} />
      </div>
      <PlacementChoice legend="Where do you want to save your passkey?" />
      <button type="submit">Set up passkey</button>
    </>
  );
}

export function PlacementChoice(props: { name?: string; legend: string }) {
  const name = props.name ?? 'placement';
  return (
    <fieldset class="radios">
      <legend>{props.legend}</legend>
      <div class="radio">
        <input type="radio" id={`${name}-this-device`} name={name} value="this-device" checked />
        <label for={`${name}-this-device`}>
          This device
          <span class="hint">Use your fingerprint, face, PIN or screen lock on the device you are using now (for example Windows Hello, Touch ID or Android).</span>
        </label>
      </div>
      <div class="radio">
        <input type="radio" id={`${name}-another-device`} name={name} value="another-device" />
        <label for={`${name}-another-device`}>
          Another phone or tablet
          <span class="hint">
            Your browser shows a QR code: scan it with the camera of your iPhone, iPad or Android device. Bluetooth must be on for both devices.
          </span>
        </label>
      </div>
      <div class="radio">
        <input type="radio" id={`${name}-security-key`} name={name} value="security-key" />
        <label for={`${name}-security-key`}>
          Security key
          <span class="hint">Insert your FIDO2 security key (YubiKey, Google Titan, Token2 …) or hold it near your device, enter its PIN and touch it.</span>
        </label>
      </div>
    </fieldset>
  );
}

export function formatTime(ms: number | null): string {
  if (!ms) return 'Never';
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
}

/**
 * A labelled form field with its error message (GOV.UK pattern): the message
 * sits between label and input, and the error summary links to the input's id.
 * Children may be a function of "is invalid" to set aria-invalid on the input.
 */
/** The six-digit code field (an emailed code, an authenticator app's), with its label and any error. */
export function CodeField(props: { label: string; errors: FieldError[] }) {
  return (
    <Field id="code" label={props.label} errors={props.errors}>
      <input type="text" id="code" name="code" inputMode="numeric" autoComplete="one-time-code" maxLength={12} class="code-input" />
    </Field>
  );
}

export function Field(props: {
  id: string;
  label: string;
  hint?: string;
  /** This field's error, or all the form's errors to pick it from. */
  error?: FieldError;
  errors?: FieldError[];
  children: ComponentChildren | ((invalid: boolean) => ComponentChildren);
}) {
  const error = props.error ?? props.errors?.find((e) => e.field === props.id);
  return (
    <div class={`field${error ? ' field-error' : ''}`}>
      <label for={props.id}>
        {props.label}
        {props.hint ? <span class="hint">{props.hint}</span> : null}
      </label>
      {error ? (
        <p class="error-message" id={`${props.id}-error`}>
          <span class="visually-hidden">Error: </span>
          {error.message}
        </p>
      ) : null}
      {typeof props.children === 'function' ? props.children(!!error) : props.children}
    </div>
  );
}

/** aria-invalid and aria-describedby for an input whose Field shows an error. */
export function invalidProps(id: string, invalid: boolean): { 'aria-invalid'?: 'true'; 'aria-describedby'?: string } {
  return invalid ? { 'aria-invalid': 'true', 'aria-describedby': `${id}-error` } : {};
}

/**
 * The "I want to remove …" tick box of a confirmation page, with its message at the field (GOV.UK pattern: the
 * error summary links here, and the message is said once, by the box it is about).
 */
export function ConfirmCheckbox(props: { label: string; error?: string | null }) {
  const invalid = !!props.error;
  return (
    <div class={`field${invalid ? ' field-error' : ''}`}>
      {invalid ? (
        <p class="error-message" id="confirm-error">
          <span class="visually-hidden">Error: </span>
          {props.error}
        </p>
      ) : null}
      <div class="checkbox">
        <input type="checkbox" id="confirm" name="confirm" value="yes" {...invalidProps('confirm', invalid)} />
        <label for="confirm">{props.label}</label>
      </div>
    </div>
  );
}
