/**
 * "Can't use your passkey?" (/signin/help): every way back in that this organisation allows, each shown only when it
 * is configured, so nobody is sent down a path that isn't there. Kratos #3386 and Authgear #2342: people who lose
 * their only passkey should not be pushed into a password reset that doesn't fit.
 */
import type { Config, UpstreamProvider } from '../../config/index.js';
import { Layout } from '../../views/layout.js';
import { RaContact } from '../../views/raContact.js';
import { AnotherDeviceSteps } from './anotherDeviceSteps.js';
import { signInQuery } from './signInQuery.js';

/** What this deployment offers besides a passkey on this device: worked out by the route from config and the kinds registered. */
export interface WaysBack {
  /** LATCHKEY_PASSWORD_SIGNIN=alone: a password on its own signs in (AAL1). */
  passwordAlone: boolean;
  /** The authenticator-app kind is registered: password + a code from the app (AAL2). */
  passwordAndApp: boolean;
  /** Linked work accounts people can sign in with. */
  linkedAccounts: UpstreamProvider[];
  /** What self-service asks for to check who someone is ("National Insurance number"). */
  nationalIdLabel: string;
}

export function SignInHelpPage(props: { config: Config; csrfToken: string; ways: WaysBack; next?: string; emailHint?: string }) {
  const { config, ways } = props;
  const query = signInQuery({ next: props.next, email: props.emailHint });
  const signin = `/signin${query}`;
  const password = `/signin/password${query}`;
  return (
    <Layout title="Can't use your passkey?" rpName={config.rpName} csrfToken={props.csrfToken} page="signin-help">
      <a href={signin} class="back-link">
        Back
      </a>
      <h1>Can't use your passkey?</h1>
      <p>There are other ways to sign in, or to get back into your {config.organisation} profile. Choose the one that fits.</p>

      <section aria-labelledby="another-device" data-way="another-device">
        <h2 id="another-device">Your passkey is on another device</h2>
        <p>You can sign in on this device with a passkey saved on your phone or tablet.</p>
        <AnotherDeviceSteps />
        <a class="button secondary" href={`${signin}#email`}>
          Sign in with your email address
        </a>
      </section>

      {ways.passwordAlone ? (
        <section aria-labelledby="password" data-way="password">
          <h2 id="password">Use your password</h2>
          <p>If you have set a password, you can sign in with it instead. Some services need more than a password: they will ask you to confirm it is you with a passkey or an authenticator app.</p>
          <p>
            <a href={password}>Sign in with your password</a>
          </p>
        </section>
      ) : null}

      {ways.passwordAndApp ? (
        <section aria-labelledby="password-and-app" data-way="password-and-app">
          <h2 id="password-and-app">Use your password and authenticator app</h2>
          <p>If you have an authenticator app on your profile, sign in with your password and a code from the app.</p>
          <p>
            <a href={password}>Sign in with a password and authenticator app</a>
          </p>
        </section>
      ) : null}

      {ways.linkedAccounts.length ? (
        <section aria-labelledby="linked-account" data-way="linked-account">
          <h2 id="linked-account">Use your work account</h2>
          <p>If you have linked a work account to your profile, sign in with it.</p>
          <ul>
            {ways.linkedAccounts.map((p) => (
              <li key={p.id}>
                <a href={`/signin/linked/${p.id}${signInQuery({ next: props.next })}`}>Sign in with {p.name}</a>
              </li>
            ))}
          </ul>
        </section>
      ) : null}

      <section aria-labelledby="self-service" data-way="self-service">
        <h2 id="self-service">Add a new passkey yourself</h2>
        <p>
          If your {ways.nationalIdLabel} is on your profile, you can prove who you are with it, your email address and a code we email you, then add a new
          passkey, an authenticator app or a work account. We email you to say it was added.
        </p>
        <p>
          <a href="/add-authenticator">Add an authenticator to your profile</a>
        </p>
      </section>

      <section aria-labelledby="registration-authority" data-way="registration-authority">
        <h2 id="registration-authority">Ask your registration authority</h2>
        <p>Your registration authority (RA) can check who you are and give you a new passkey or a security key.</p>
        <p>
          Contact <RaContact config={config} />.
        </p>
      </section>
    </Layout>
  );
}
