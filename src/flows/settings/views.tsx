import type { Config } from '../../config/index.js';
import type { AuditEvent, Authenticator, Session, User } from '../../db/schema.js';
import type { FieldError } from '../../errors.js';
import { providerFor, type ProviderKind } from '../../webauthn/aaguids.js';
import { ConfirmCheckbox, CsrfField, ErrorSummary, formatTime, Layout, NO_SCRIPT_MESSAGE, NoScript, PlacementChoice, StatusRegion } from '../../views/layout.js';
import { describeUserAgent } from '../../views/userAgent.js';
import { RaContact } from '../../views/raContact.js';
import { nationalIdFormat } from '../../users/nationalId.js';
import { auditEventLabel } from '../../audit.js';

function ProviderIcon(props: { kind: ProviderKind }) {
  const paths: Record<ProviderKind, string> = {
    platform: 'M3 5h18v11H3zM1 18h22v2H1z',
    'password-manager': 'M12 2a5 5 0 0 0-5 5v3H5v12h14V10h-2V7a5 5 0 0 0-5-5zm-3 8V7a3 3 0 0 1 6 0v3z',
    'security-key': 'M7 2h10v9H7zM9 11h6v9a3 3 0 0 1-6 0z',
    unknown: 'M7 14a5 5 0 1 1 4.9-6H23v4h-2v3h-3v-3h-6.1A5 5 0 0 1 7 14zm0-3a2 2 0 1 0 0-4 2 2 0 0 0 0 4z',
  };
  return (
    <svg viewBox="0 0 24 24" aria-hidden="true" focusable="false">
      <path d={paths[props.kind]} fill="currentColor" />
    </svg>
  );
}

/**
 * "a passkey saved in iCloud Keychain, created 2026-12-04 09:30 UTC": one piece of text for a sentence (the
 * provider's icon and flex layout would break the sentence into lines), without "saved in Passkey" for the unknown.
 */
export function describePasskey(passkey: Pick<Authenticator, 'aaguid' | 'created_at'>): string {
  const provider = providerFor(passkey.aaguid);
  const where = provider.kind === 'unknown' ? '' : ` saved ${provider.kind === 'security-key' ? 'on' : 'in'} ${provider.name}`;
  return `a passkey${where}, created ${formatTime(passkey.created_at)}`;
}

export function PasskeyProvider(props: { aaguid: string }) {
  const provider = providerFor(props.aaguid);
  return (
    <span class="provider" data-provider={provider.name}>
      <ProviderIcon kind={provider.kind} />
      {provider.name}
    </span>
  );
}

/** From the BE (backup eligible) and BS (backed up) flags, WebAuthn L3 §6.1.3. */
export function SyncBadge(props: { authenticator: Authenticator }) {
  const { backup_eligible: eligible, backed_up: backedUp } = props.authenticator;
  if (eligible && backedUp) {
    return (
      <span class="badge synced" title="Backed up and available on your other devices signed in to the same account">
        Synced
      </span>
    );
  }
  if (eligible) {
    return (
      <span class="badge synced" title="Can sync to your other devices, but your passkey provider has not backed it up yet">
        Synced when backed up
      </span>
    );
  }
  return (
    <span class="badge device" title="Stays on this one device or security key">
      This device only
    </span>
  );
}

const flashes: Record<string, string> = {
  created: 'Your account has been created and your passkey is set up.',
  enrolled: 'Your passkey has been set up. You can now use it to sign in.',
  added: 'Your passkey has been set up.',
  renamed: 'Your passkey has been renamed.',
  removed: 'Your passkey has been removed from your account.',
  ended: 'That session has been signed out.',
  password: 'Your password has been changed.',
  passwordset: 'Your password has been set. You can now use it to sign in.',
  unlinked: 'It has been removed: you can no longer sign in with it.',
};

export interface SettingsModel {
  config: Config;
  csrfToken: string;
  user: User;
  passkeys: Authenticator[];
  sessions: Session[];
  currentSessionId: string;
  activity: AuditEvent[];
  flash?: string;
  /** After a removal or rename: tell the passkey provider what changed (WebAuthn Signals API). */
  signal: boolean;
  /** The add-passkey form was submitted without JavaScript. */
  noScript?: boolean;
  /** The person holds a registration-authority role: link to the console. */
  agent?: boolean;
  /** Each passkey in plain words (by authenticator id): model, certification, where it lives, AAL3, a reported problem. */
  passkeyWords?: Map<string, { summary: string; warning?: string }>;
  /** Every other kind (authenticator apps, linked work accounts …), with its kind's label. */
  others: { authenticator: Authenticator; label: string }[];
  /** Words for audit events: the shared ones and every kind's own (src/audit.ts auditEventLabelsFor). */
  eventLabels: Record<string, string>;
  /**
   * LATCHKEY_PASSWORD_SIGNIN=alone (listed as "Password" among the others), and whether to offer "Set a password":
   * `new`, or `app` when the person uses a password with an app already; undefined once they have one of their own.
   */
  passwordAlone?: { offer?: 'new' | 'app' };
  /** The person's one way in, when it is a single passkey and nothing else (onlyPasskey in routes.tsx): say what losing it means. */
  onlyPasskey?: Authenticator;
}

/**
 * One passkey and nothing else is one lost phone or key away from being locked out: say so, say how they would get
 * back in (the ways their organisation allows them), and offer the remedy on the spot.
 */
function OnlyPasskeyWarning(m: { config: Config; user: User; passkey: Authenticator }) {
  const label = nationalIdFormat(m.config).label;
  return (
    <div class="warning" id="only-passkey" data-only-passkey>
      <h3>You have only one way to sign in</h3>
      <p>
        If you lose your passkey <strong>{m.passkey.name}</strong>, or the phone, computer or security key it is on, you will not be able to sign in.
      </p>
      {m.user.national_id_hash ? (
        <p>
          To get back in, you would have to prove who you are again: with your email address, your {label} and a code we email you (
          <a href="/add-authenticator">add an authenticator to your profile</a>), or through <RaContact config={m.config} />.
        </p>
      ) : (
        <p>To get back in, you would have to ask <RaContact config={m.config} /> to check who you are and give you a new passkey.</p>
      )}
      <p>Set up another passkey on a different device, such as your phone, or on a security key, so that you always have a second way in.</p>
      <a class="button secondary" href="#add-passkey">
        Set up another passkey
      </a>
    </div>
  );
}

export function SettingsPage(m: SettingsModel) {
  const signalData: Record<string, string> = m.signal
    ? {
        'signal-rp-id': m.config.rpId,
        'signal-user-id': Buffer.from(m.user.id).toString('base64url'),
        'signal-credentials': m.passkeys.map((p) => p.credential_id).join(','),
        'signal-name': m.user.email,
        'signal-display-name': m.user.display_name,
      }
    : {};
  const flash = m.flash ? flashes[m.flash] : undefined;
  return (
    <Layout title="Login and security settings" rpName={m.config.rpName} csrfToken={m.csrfToken} page="settings" signedIn={{ displayName: m.user.display_name }} data={signalData}>
      <h1>Login and security settings</h1>
      <ErrorSummary message={m.noScript ? NO_SCRIPT_MESSAGE : null} />
      {flash ? (
        <div class="notice success" role="status" id="flash">
          {flash}
        </div>
      ) : null}
      <StatusRegion />
      <div class="notice" id="signal-fallback" hidden>
        Your device may still offer a passkey you removed, or show its old name. To stop this, also remove or rename it in your device's settings: on iPhone,
        iPad or Mac in Passwords; on Android in Google Password Manager; on Windows in Settings, Accounts, Passkeys; or in your password manager.
      </div>
      <p>
        Signed in as <strong>{m.user.display_name}</strong> ({m.user.email}).
      </p>
      <p>
        <a href="/services">See the services you can use</a>
      </p>
      {m.agent ? (
        <p>
          <a href="/admin">Go to the registration authority console</a>
        </p>
      ) : null}

      <h2 id="passkeys">Passkeys</h2>
      <table aria-labelledby="passkeys">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Provider</th>
            <th scope="col">Created</th>
            <th scope="col">Last used</th>
            <th scope="col">
              <span class="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {m.passkeys.map((p) => {
            const words = m.passkeyWords?.get(p.id);
            return (
            <tr data-passkey-id={p.id} data-credential-id={p.credential_id}>
              <td data-label="Name">
                <strong class="passkey-name">{p.name}</strong>
                <br />
                <SyncBadge authenticator={p} />
                {words ? (
                  <span class="hint" data-passkey-words>
                    {words.summary}
                  </span>
                ) : null}
                {words?.warning ? (
                  <p class="warning" data-compromised>
                    {words.warning}
                  </p>
                ) : null}
              </td>
              <td data-label="Provider">
                <PasskeyProvider aaguid={p.aaguid} />
              </td>
              <td data-label="Created">{formatTime(p.created_at)}</td>
              <td data-label="Last used">{formatTime(p.last_used_at)}</td>
              <td class="actions">
                <a href={`/settings/passkeys/${p.id}/rename`}>
                  Rename<span class="visually-hidden"> {p.name}</span>
                </a>
                <a href={`/settings/passkeys/${p.id}/remove`}>
                  Remove<span class="visually-hidden"> {p.name}</span>
                </a>
              </td>
            </tr>
            );
          })}
        </tbody>
      </table>
      {m.onlyPasskey ? <OnlyPasskeyWarning config={m.config} user={m.user} passkey={m.onlyPasskey} /> : null}

      <h2 id="add-passkey">Set up a passkey</h2>
      <NoScript />
      <p>You can have passkeys on different devices. Only set up passkeys on personal or trusted devices. You may be asked to confirm it is you first.</p>
      <form id="add-passkey-form" method="post" novalidate aria-labelledby="add-passkey">
        <CsrfField token={m.csrfToken} />
        <div class="field">
          <label for="name">
            Name your device <span class="hint">For example "Work laptop", "My iPhone" or "Blue YubiKey".</span>
          </label>
          <input type="text" id="name" name="name" maxLength={64} required data-required-message="Enter a name for your passkey" />
        </div>
        <PlacementChoice legend="Where do you want to save the passkey?" />
        <button type="submit">Set up a passkey</button>
      </form>

      <h2 id="other-methods">{m.passwordAlone ? 'Password, authenticator apps and work accounts' : 'Authenticator apps and work accounts'}</h2>
      {m.others.length ? (
        <table aria-labelledby="other-methods">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Type</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {m.others.map(({ authenticator: a, label }) => (
              <tr data-authenticator-id={a.id} data-kind={a.type}>
                <td data-label="Name">{a.name}</td>
                <td data-label="Type">{label}</td>
                <td data-label="Created">{formatTime(a.created_at)}</td>
                <td data-label="Last used">{formatTime(a.last_used_at)}</td>
                <td class="actions">
                  <a href={`/settings/authenticators/${a.id}/remove`}>
                    Remove<span class="visually-hidden"> {a.name}</span>
                  </a>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p>{m.passwordAlone ? 'You have no password, authenticator app or linked work account.' : 'You have no authenticator app or linked work account.'}</p>
      )}
      {m.passwordAlone?.offer ? (
        <p data-set-password-offer>
          {m.passwordAlone.offer === 'app'
            ? 'You use your password with a code from your authenticator app. You can also let it sign you in on its own, for when you do not have your passkey or app with you.'
            : 'If you do not have a passkey set up on another device, you can set a password to sign in with instead.'}
        </p>
      ) : null}
      <div class="actions">
        <form method="post" action="/settings/add-authenticator" class="inline">
          <CsrfField token={m.csrfToken} />
          <button type="submit" class="secondary">
            Add an authenticator app or work account
          </button>
        </form>
        {m.passwordAlone?.offer ? (
          <a class="button secondary" href="/settings/set-password">
            Set a password
          </a>
        ) : null}
        {m.user.password_hash ? (
          <a class="button secondary" href="/settings/password">
            Change your password
          </a>
        ) : null}
      </div>

      <h2 id="sessions">Where you are signed in</h2>
      <table aria-labelledby="sessions">
        <thead>
          <tr>
            <th scope="col">Device</th>
            <th scope="col">IP address</th>
            <th scope="col">Signed in</th>
            <th scope="col">Last active</th>
            <th scope="col">
              <span class="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {m.sessions.map((s) => (
            <tr data-session-id={s.public_id}>
              <td data-label="Device">{describeUserAgent(s.user_agent)}</td>
              <td data-label="IP address">{s.ip}</td>
              <td data-label="Signed in">{formatTime(s.created_at)}</td>
              <td data-label="Last active">{formatTime(s.last_seen_at)}</td>
              <td>
                {s.public_id === m.currentSessionId ? (
                  <strong>This session</strong>
                ) : (
                  <form method="post" action={`/settings/sessions/${s.public_id}/end`} class="inline">
                    <CsrfField token={m.csrfToken} />
                    <button type="submit" class="secondary">
                      Sign out<span class="visually-hidden"> {describeUserAgent(s.user_agent)} session</span>
                    </button>
                  </form>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>

      <h2 id="activity">Recent activity</h2>
      <table aria-labelledby="activity">
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">What</th>
            <th scope="col">From</th>
          </tr>
        </thead>
        <tbody>
          {m.activity.map((e) => (
            <tr data-event={e.event}>
              <td data-label="When">{formatTime(e.at)}</td>
              <td data-label="What">{auditEventLabel(m.eventLabels, e)}</td>
              <td data-label="From">
                {e.ip ?? ''} {e.user_agent ? describeUserAgent(e.user_agent) : ''}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Layout>
  );
}

export function RenamePage(props: { config: Config; csrfToken: string; user: User; passkey: Authenticator; error?: FieldError; value?: string }) {
  return (
    <Layout title="Rename passkey" rpName={props.config.rpName} csrfToken={props.csrfToken} page="rename" signedIn={{ displayName: props.user.display_name }}>
      <h1>Rename passkey</h1>
      <ErrorSummary message={props.error ? 'Check the name and try again.' : null} fields={props.error ? [props.error] : []} />
      <form method="post" action={`/settings/passkeys/${props.passkey.id}/rename`} novalidate>
        <CsrfField token={props.csrfToken} />
        <div class={`field${props.error ? ' field-error' : ''}`}>
          <label for="name">Name your device</label>
          {props.error ? (
            <p class="error-message" id="name-error">
              {props.error.message}
            </p>
          ) : null}
          <input
            type="text"
            id="name"
            name="name"
            maxLength={64}
            value={props.value ?? props.passkey.name}
            required
            aria-describedby={props.error ? 'name-error' : undefined}
            aria-invalid={props.error ? 'true' : undefined}
          />
        </div>
        <div class="actions">
          <button type="submit">Save name</button>
          <a class="button secondary" href="/settings">
            Cancel
          </a>
        </div>
      </form>
    </Layout>
  );
}

export function RemovePage(props: { config: Config; csrfToken: string; user: User; passkey: Authenticator; isLast: boolean; error?: string }) {
  return (
    <Layout title="Remove passkey" rpName={props.config.rpName} csrfToken={props.csrfToken} page="remove" signedIn={{ displayName: props.user.display_name }}>
      <h1>Remove passkey</h1>
      {/* Said once: a missing tick is a link to the box (with its message there); "your only passkey" is about the page. */}
      <ErrorSummary message={props.error && props.isLast ? props.error : null} fields={props.error && !props.isLast ? [{ field: 'confirm', message: props.error }] : []} />
      <p>
        <strong>{props.passkey.name}</strong> is {describePasskey(props.passkey)}.
      </p>
      {props.isLast ? (
        <>
          <p class="warning" data-last-passkey>
            This is your only passkey. You cannot remove it, because you would not be able to sign in. Set up another passkey first, then remove this one.
          </p>
          <a class="button secondary" href="/settings#add-passkey">
            Set up another passkey
          </a>
        </>
      ) : (
        <form method="post" action={`/settings/passkeys/${props.passkey.id}/remove`} novalidate>
          <CsrfField token={props.csrfToken} />
          <p>You will not be able to use this passkey to sign in. Your device may still offer it: you can also remove it in your device settings.</p>
          <ConfirmCheckbox label="I want to remove this passkey" error={props.isLast ? null : props.error} />
          <div class="actions">
            <button type="submit" class="warning">
              Remove passkey
            </button>
            <a class="button secondary" href="/settings">
              Cancel
            </a>
          </div>
        </form>
      )}
    </Layout>
  );
}
