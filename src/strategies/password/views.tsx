import type { Config } from '../../config/index.js';
import type { User } from '../../db/schema.js';
import type { FieldError } from '../../errors.js';
import { CsrfField, ErrorSummary, Field, invalidProps, Layout } from '../../views/layout.js';
import { MIN_PASSWORD_LENGTH } from './passwords.js';


/**
 * Email + password + authenticator-app code, one form (seed 001). With LATCHKEY_PASSWORD_SIGNIN=alone the code is
 * optional ("Sign in with your password"): a password alone signs in, and the code makes the sign-in stronger.
 */
export function PasswordSignInPage(props: { config: Config; csrfToken: string; next?: string; error?: string; fields?: FieldError[]; email?: string }) {
  const fields = props.fields ?? [];
  const alone = props.config.passwordSignIn === 'alone';
  const title = alone ? 'Sign in with your password' : 'Sign in with a password and authenticator app';
  // Back to sign-in as the person left it: the service waiting (next) and the address typed in, when it can be one
  // (RFC 5321 §4.5.3.1.3: 254 characters at most, all /signin takes).
  const back = new URLSearchParams();
  if (props.next) back.set('next', props.next);
  if (props.email && props.email.length <= 254) back.set('email', props.email);
  return (
    <Layout title={title} rpName={props.config.rpName} csrfToken={props.csrfToken} page="signin-password">
      <a class="back-link" href={`/signin${back.size ? `?${back}` : ''}`}>
        Back
      </a>
      <h1>{title}</h1>
      <ErrorSummary message={props.error ?? null} fields={fields} />
      <form method="post" action={`/signin/password${props.next ? `?next=${encodeURIComponent(props.next)}` : ''}`} novalidate>
        <CsrfField token={props.csrfToken} />
        <Field id="email" label="Email address" errors={fields}>
          {(invalid) => <input type="email" id="email" name="email" autoComplete="username" spellcheck={false} value={props.email ?? ''} maxLength={254} {...invalidProps('email', invalid)} />}
        </Field>
        <Field id="password" label="Password" errors={fields}>
          {(invalid) => <input type="password" id="password" name="password" autoComplete="current-password" maxLength={256} {...invalidProps('password', invalid)} />}
        </Field>
        <Field
          id="code"
          label={alone ? 'Code from your authenticator app (optional)' : 'Code from your authenticator app'}
          hint={alone ? 'If you use an authenticator app, enter the 6-digit code it shows now for a stronger sign-in. Otherwise leave this blank.' : 'The 6-digit code the app shows now.'}
          errors={fields}
        >
          {(invalid) => <input type="text" id="code" name="code" inputMode="numeric" autoComplete="one-time-code" maxLength={12} class="code-input" {...invalidProps('code', invalid)} />}
        </Field>
        <button type="submit">Sign in</button>
      </form>
      <p>
        <a href={`/signin${props.next ? `?next=${encodeURIComponent(props.next)}` : ''}`}>Sign in with a passkey instead</a>
      </p>
      <p>
        No passkey or authenticator app yet? <a href="/add-authenticator">Add an authenticator to your profile</a>
      </p>
    </Layout>
  );
}

/**
 * "Set a password" (LATCHKEY_PASSWORD_SIGNIN=alone), one thing on the page: a password that signs in on its own. For
 * someone who already uses a password with an authenticator app, it says that this changes that password too.
 */
export function SetPasswordPage(props: { config: Config; csrfToken: string; user: User; withApp: boolean; errors: FieldError[] }) {
  return (
    <Layout title="Set a password" rpName={props.config.rpName} csrfToken={props.csrfToken} page="set-password" signedIn={{ displayName: props.user.display_name }}>
      <a class="back-link" href="/settings">
        Back
      </a>
      <h1>Set a password</h1>
      <ErrorSummary fields={props.errors} />
      <p>If you do not have a passkey set up on another device, you can use your password to sign in instead.</p>
      {props.withApp ? (
        <p data-with-app>
          You already use a password with your authenticator app. Setting a password here changes that password too, and lets you sign in with it on its own.
        </p>
      ) : null}
      <p>
        A password on its own is easier to steal than a passkey. Services that need a stronger sign-in will ask you to use a passkey
        {props.withApp ? ' or your authenticator app' : ''} as well.
      </p>
      <form method="post" action="/settings/set-password" novalidate>
        <CsrfField token={props.csrfToken} />
        <Field id="password" label="Password" hint={`At least ${MIN_PASSWORD_LENGTH} characters. Do not use a common password or one you use anywhere else.`} errors={props.errors}>
          {(invalid) => <input type="password" id="password" name="password" autoComplete="new-password" maxLength={256} {...invalidProps('password', invalid)} />}
        </Field>
        <Field id="confirmPassword" label="Confirm password" errors={props.errors}>
          {(invalid) => <input type="password" id="confirmPassword" name="confirmPassword" autoComplete="new-password" maxLength={256} {...invalidProps('confirmPassword', invalid)} />}
        </Field>
        <div class="actions">
          <button type="submit">Set password</button>
          <a class="button secondary" href="/settings">
            Cancel
          </a>
        </div>
      </form>
    </Layout>
  );
}
