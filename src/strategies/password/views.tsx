import type { Config } from '../../config/index.js';
import type { FieldError } from '../../errors.js';
import { CsrfField, ErrorSummary, Field, invalidProps, Layout } from '../../views/layout.js';


/** Email + password + authenticator-app code, one form (seed 001). */
export function PasswordSignInPage(props: { config: Config; csrfToken: string; next?: string; error?: string; fields?: FieldError[]; email?: string }) {
  const fields = props.fields ?? [];
  return (
    <Layout title="Sign in with a password and authenticator app" rpName={props.config.rpName} csrfToken={props.csrfToken} page="signin-password">
      <h1>Sign in with a password and authenticator app</h1>
      <ErrorSummary message={props.error ?? null} fields={fields} />
      <form method="post" action={`/signin/password${props.next ? `?next=${encodeURIComponent(props.next)}` : ''}`} novalidate>
        <CsrfField token={props.csrfToken} />
        <Field id="email" label="Email address" errors={fields}>
          {(invalid) => <input type="email" id="email" name="email" autoComplete="username" spellcheck={false} value={props.email ?? ''} maxLength={254} {...invalidProps('email', invalid)} />}
        </Field>
        <Field id="password" label="Password" errors={fields}>
          {(invalid) => <input type="password" id="password" name="password" autoComplete="current-password" maxLength={256} {...invalidProps('password', invalid)} />}
        </Field>
        <Field id="code" label="Code from your authenticator app" hint="The 6-digit code the app shows now." errors={fields}>
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
