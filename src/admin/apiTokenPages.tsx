/**
 * The console's API token pages (src/admin/routes/apiTokens.tsx): the list, the form that makes one, the page that
 * shows a new token once, and the confirmation before revoking.
 */
import type { ApiToken } from '../db/schema.js';
import type { FieldError } from '../errors.js';
import { API_TOKEN_DEFAULT_DAYS, API_TOKEN_MAX_DAYS, API_TOKEN_NAME_MAX_LENGTH, API_TOKEN_PREFIX } from '../api/apiTokens.js';
import { CsrfField, ErrorSummary, Field, formatTime, invalidProps } from '../views/layout.js';
import { ROLES, roleDescriptions, roleLabels, isRole } from './roles.js';
import { AdminLayout, Flash, type AdminContext } from './views.js';

export type ApiTokenStatus = 'active' | 'expired' | 'revoked';

export interface ApiTokenListItem {
  token: ApiToken;
  status: ApiTokenStatus;
  /** The name of the agent who made it; null when it was made on the command line. */
  createdBy: string | null;
}

const statusLabels: Record<ApiTokenStatus, string> = { active: 'Active', expired: 'Expired', revoked: 'Revoked' };

function roleLabel(role: string): string {
  return isRole(role) ? roleLabels[role] : role;
}

function StatusTag(props: { status: ApiTokenStatus }) {
  return (
    <span class={`badge token-${props.status}`} data-token-status={props.status}>
      {statusLabels[props.status]}
    </span>
  );
}

export function ApiTokensPage(m: AdminContext & { items: ApiTokenListItem[]; flash?: string | null }) {
  return (
    <AdminLayout {...m} title="API tokens">
      <h1>API tokens</h1>
      <Flash message={m.flash} />
      <p>
        An API token lets another system, such as an HR feed or a helpdesk portal, use the <a href="/api/docs">admin API</a> and SCIM. It acts with one role and
        can do only what that role can do in the console. Each use is recorded in the audit log with the token as the actor.
      </p>
      <p>
        <a class="button" href="/admin/api-tokens/new">
          Create an API token
        </a>
      </p>
      <h2 id="tokens">Tokens</h2>
      {m.items.length ? (
        <table aria-labelledby="tokens">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Role</th>
              <th scope="col">Status</th>
              <th scope="col">Created</th>
              <th scope="col">Expires</th>
              <th scope="col">Last used</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {m.items.map(({ token, status, createdBy }) => (
              <tr data-token-id={token.id}>
                <td data-label="Name">
                  {token.name}
                  <span class="hint">
                    ID <code>{token.id}</code>
                  </span>
                </td>
                <td data-label="Role">{roleLabel(token.role)}</td>
                <td data-label="Status">
                  <StatusTag status={status} />
                </td>
                <td data-label="Created">
                  {formatTime(token.created_at)}
                  <span class="hint">{createdBy === null ? 'on the command line' : `by ${createdBy}`}</span>
                </td>
                <td data-label="Expires">{status === 'revoked' ? `Revoked ${formatTime(token.revoked_at)}` : formatTime(token.expires_at)}</td>
                <td data-label="Last used">{formatTime(token.last_used_at)}</td>
                <td class="actions">
                  {status === 'active' ? (
                    <a href={`/admin/api-tokens/${token.id}/revoke`}>
                      Revoke<span class="visually-hidden"> {token.name}</span>
                    </a>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p>No API tokens have been made.</p>
      )}
    </AdminLayout>
  );
}

export interface NewApiTokenValues {
  name: string;
  role: string;
  days: string;
}

export function NewApiTokenPage(m: AdminContext & { values: NewApiTokenValues; errors: FieldError[] }) {
  const roleError = m.errors.find((e) => e.field.startsWith('role-'));
  return (
    <AdminLayout {...m} title="Create an API token">
      <a href="/admin/api-tokens" class="back-link">
        Back to API tokens
      </a>
      <h1>Create an API token</h1>
      <ErrorSummary fields={m.errors} />
      <form method="post" action="/admin/api-tokens/new" novalidate>
        <CsrfField token={m.csrfToken} />
        <Field id="name" label="Name" hint="The system that will use it, for example “HR feed”. The audit log names the token by it." errors={m.errors}>
          {(invalid) => <input type="text" id="name" name="name" value={m.values.name} maxLength={API_TOKEN_NAME_MAX_LENGTH} autoComplete="off" {...invalidProps('name', invalid)} />}
        </Field>
        <fieldset class={`radios${roleError ? ' field-error' : ''}`} aria-describedby={roleError ? 'role-error' : undefined}>
          <legend>Role the token acts with</legend>
          <p class="hint">The token can do only what this role can do in the console. Choose the least the system needs.</p>
          {roleError ? (
            <p class="error-message" id="role-error">
              <span class="visually-hidden">Error: </span>
              {roleError.message}
            </p>
          ) : null}
          {ROLES.map((role) => (
            <div class="radio">
              <input type="radio" id={`role-${role}`} name="role" value={role} checked={m.values.role === role} aria-describedby={`role-${role}-hint`} />
              <label for={`role-${role}`}>
                {roleLabels[role]}
                <span class="hint" id={`role-${role}-hint`}>
                  {roleDescriptions[role]}
                </span>
              </label>
            </div>
          ))}
        </fieldset>
        <Field
          id="days"
          label="Expires in (days)"
          hint={`From 1 to ${API_TOKEN_MAX_DAYS} days; ${API_TOKEN_DEFAULT_DAYS} unless you change it. After that the token stops working and you make a new one.`}
          errors={m.errors}
        >
          {(invalid) => <input type="text" id="days" name="days" value={m.values.days} inputMode="numeric" class="short" autoComplete="off" {...invalidProps('days', invalid)} />}
        </Field>
        <button type="submit">Create token</button>
      </form>
    </AdminLayout>
  );
}

/** After making a token: the token itself on the first load only; after that, a line saying it was shown once. */
export function ApiTokenCreatedPage(m: AdminContext & { token: ApiToken; value?: string }) {
  return (
    <AdminLayout {...m} title={`API token created – ${m.token.name}`} page="admin-api-token">
      <h1>API token created</h1>
      <dl class="summary">
        <dt>Name</dt>
        <dd>{m.token.name}</dd>
        <dt>ID</dt>
        <dd>
          <code>{m.token.id}</code>
        </dd>
        <dt>Role</dt>
        <dd>{roleLabel(m.token.role)}</dd>
        <dt>Expires</dt>
        <dd>{formatTime(m.token.expires_at)}</dd>
      </dl>
      {m.value ? (
        <>
          <div class="warning" role="alert">
            <p>
              <strong>Copy it now: you will not see it again.</strong> Only a fingerprint of it is kept, so no one can show it to you later.
            </p>
          </div>
          <div class="field">
            <label for="api-token">API token</label>
            <input type="text" id="api-token" value={m.value} readOnly autoComplete="off" spellcheck={false} class="token-value" />
          </div>
          <div class="actions">
            <button type="button" class="secondary" data-copy-button="api-token" data-copied-text="Token copied" hidden>
              Copy token
            </button>
          </div>
        </>
      ) : (
        <p id="shown-once">
          The token was shown once, to the person who created it, and is not shown again. If it was lost, revoke it and create a new one.
        </p>
      )}
      <h2>How to use it</h2>
      <p>Send it in the Authorization header of every request to the admin API or SCIM:</p>
      <p>
        <code>Authorization: Bearer {API_TOKEN_PREFIX}…</code>
      </p>
      <p>
        The <a href="/api/docs">API documentation</a> lists what it can ask. A request without a valid token is answered 401; one its role does not allow, 403.
      </p>
      <p>
        <a href="/admin/api-tokens">Back to API tokens</a>
      </p>
    </AdminLayout>
  );
}

export function RevokeApiTokenPage(m: AdminContext & { token: ApiToken }) {
  return (
    <AdminLayout {...m} title={`Revoke API token – ${m.token.name}`}>
      <a href="/admin/api-tokens" class="back-link">
        Back to API tokens
      </a>
      <h1>Are you sure you want to revoke the API token ‘{m.token.name}’?</h1>
      <p>
        It acts as {roleLabel(m.token.role)}. Any system that uses it stops working at once: its requests are answered 401. You cannot undo this; to carry on, create
        a new token and give it to the system.
      </p>
      <form method="post" action={`/admin/api-tokens/${m.token.id}/revoke`}>
        <CsrfField token={m.csrfToken} />
        <div class="actions">
          <button type="submit" class="warning">
            Revoke token
          </button>
          <a href="/admin/api-tokens">Cancel</a>
        </div>
      </form>
    </AdminLayout>
  );
}
