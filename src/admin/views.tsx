/**
 * Pages of the registration-authority console (seed 000, Care Identity
 * Management; seed 003, enrolment by email or 9-character code). Controls an
 * agent's roles do not allow are not shown; the routes refuse them anyway.
 */
import type { ComponentChildren } from 'preact';
import type { Config } from '../config/index.js';
import type { Authenticator, EmailTemplate, Flow, User, UserStatus } from '../db/schema.js';
import type { AuditRow } from '../db/persisters/audit.js';
import { errorCatalogue, type FieldError } from '../errors.js';
import { auditEventLabel, auditEventLabelsFor, describeRefusal } from '../audit.js';
import type { KindRegistry } from '../strategies/kindRegistry.js';
import { ConfirmCheckbox, CsrfField, ErrorSummary, Field, formatTime, Layout } from '../views/layout.js';
import { describeDuration } from '../views/describeDuration.js';
import { describePasskey, PasskeyProvider, SyncBadge } from '../flows/settings/views.js';
import { can, ROLES, roleDescriptions, roleLabels, type Permission, type Role } from './roles.js';
import { PLACEHOLDERS } from './emailTemplates.js';
import { enrolmentStatusLabels, formatCode, type EnrolmentMethod, type EnrolmentStatus } from '../flows/enrolment/invites.js';
import type { NationalIdFormat } from '../users/nationalId.js';
import type { PasskeyStanding } from '../webauthn/policyInWords.js';
import { certificationLabel } from '../webauthn/metadata/catalogue.js';

export interface AdminContext {
  config: Config;
  /** The kinds of authenticator: how each shows, what it is worth, what an agent may issue, the words for their audit events. */
  kinds: KindRegistry;
  csrfToken: string;
  agent: { user: User; roles: Role[] };
}

export const statusLabels: Record<UserStatus, string> = { pending: 'Pending', enrolled: 'Enrolled', suspended: 'Suspended' };

/** Every console page's frame: the navigation the agent's roles allow, then the page. */
export function AdminLayout(props: AdminContext & { title: string; children: ComponentChildren; page?: string; data?: Record<string, string>; refreshSeconds?: number }) {
  const allowed = (p: Permission) => can(props.agent.roles, p);
  return (
    <Layout
      title={props.title}
      rpName={props.config.rpName}
      csrfToken={props.csrfToken}
      page={props.page ?? 'admin'}
      data={props.data}
      refreshSeconds={props.refreshSeconds}
      signedIn={{ displayName: props.agent.user.display_name }}
    >
      <nav aria-label="Registration authority" class="admin-nav">
        <a href="/admin">Console home</a>
        {allowed('users.view') ? <a href="/admin/users">Users</a> : null}
        {allowed('users.add') ? <a href="/admin/users/new">Add a user</a> : null}
        {allowed('audit.read') ? <a href="/admin/audit">Audit log</a> : null}
        {allowed('templates.manage') ? <a href="/admin/templates">Email templates</a> : null}
        {allowed('services.manage') ? <a href="/admin/services">Services</a> : null}
        {allowed('policy.manage') ? <a href="/admin/policy">Authenticator policy</a> : null}
        {allowed('api_tokens.manage') ? <a href="/admin/api-tokens">API tokens</a> : null}
        {allowed('webhooks.manage') ? <a href="/admin/webhooks">Webhooks</a> : null}
      </nav>
      {props.children}
    </Layout>
  );
}

/** The success banner after a change (`?done=…`). */
export function Flash(props: { message?: string | null }) {
  return props.message ? (
    <div class="notice success" role="status" id="flash">
      {props.message}
    </div>
  ) : null;
}

function StatusTag(props: { status: UserStatus }) {
  return <span class={`badge status-${props.status}`}>{statusLabels[props.status]}</span>;
}

// ------------------------------------------------------------------ home, search, list

export function HomePage(m: AdminContext & { flash?: string | null }) {
  const allowed = (p: Permission) => can(m.agent.roles, p);
  return (
    <AdminLayout {...m} title="Registration authority console">
      <h1>Registration authority console</h1>
      <Flash message={m.flash} />
      <p>
        Signed in as <strong>{m.agent.user.display_name}</strong>, {m.agent.roles.map((r) => roleLabels[r]).join(', ')}.
      </p>
      {allowed('users.view') ? (
        <>
          <h2 id="find">Find an existing user</h2>
          <SearchForm query="" status="" />
        </>
      ) : null}
      {allowed('users.add') ? (
        <>
          <h2>Add a user</h2>
          <p>If you cannot find the person, add them. They stay Pending until they set up a passkey.</p>
          <a class="button secondary" href="/admin/users/new">
            Add a user
          </a>
          <p>
            <a href="/admin/users/import">Import users from a CSV file</a> to add many people at once.
          </p>
        </>
      ) : null}
      {allowed('webhooks.manage') ? (
        <>
          <h2>Webhooks</h2>
          <p>
            <a href="/admin/webhooks">Send changes to other systems (webhooks)</a>
          </p>
        </>
      ) : null}
      {allowed('audit.read') ? (
        <>
          <h2>Audit log</h2>
          <p>
            <a href="/admin/audit">Read and export the audit log</a>
          </p>
        </>
      ) : null}
      {allowed('api_tokens.manage') ? (
        <>
          <h2>API tokens</h2>
          <p>
            <a href="/admin/api-tokens">Make and revoke tokens for other systems (an HR feed, a helpdesk portal)</a>
          </p>
        </>
      ) : null}
    </AdminLayout>
  );
}

function SearchForm(props: { query: string; status: string }) {
  return (
    <form method="get" action="/admin/users" role="search" aria-label="Find a user">
      <div class="field">
        <label for="q">
          Name, email address or user ID
          <span class="hint">The start is enough, for example "ada" or "ada.lovelace@".</span>
        </label>
        <input type="text" id="q" name="q" value={props.query} maxLength={254} autoComplete="off" />
      </div>
      <div class="field">
        <label for="status">Status</label>
        <select id="status" name="status">
          <option value="" selected={!props.status}>
            Any status
          </option>
          {(['pending', 'enrolled', 'suspended'] as const).map((s) => (
            <option value={s} selected={props.status === s}>
              {statusLabels[s]}
            </option>
          ))}
        </select>
      </div>
      <button type="submit">Search</button>
    </form>
  );
}

export function UsersPage(m: AdminContext & { query: string; status: string; users: User[]; pageNumber: number; hasNext: boolean; lastPage: boolean }) {
  const page = m.pageNumber;
  const link = (page: number) => {
    const p = new URLSearchParams();
    if (m.query) p.set('q', m.query);
    if (m.status) p.set('status', m.status);
    if (page > 1) p.set('page', String(page));
    const s = p.toString();
    return `/admin/users${s ? `?${s}` : ''}`;
  };
  return (
    <AdminLayout {...m} title={m.query ? `Users matching "${m.query}"` : 'Users'}>
      <h1>{m.query || m.status ? 'Find an existing user' : 'Users'}</h1>
      <SearchForm query={m.query} status={m.status} />
      {can(m.agent.roles, 'users.add') ? (
        <p>
          <a href="/admin/users/import">Import users from a CSV file</a>
        </p>
      ) : null}
      <h2 id="results">{m.users.length ? `Results${page > 1 ? `, page ${page}` : ''}` : 'No users found'}</h2>
      {m.users.length ? (
        <table aria-labelledby="results">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Email address</th>
              <th scope="col">Status</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {m.users.map((u) => (
              <tr data-user-id={u.id}>
                <td data-label="Name">{u.display_name}</td>
                <td data-label="Email address">{u.email}</td>
                <td data-label="Status">
                  <StatusTag status={u.status} />
                </td>
                <td class="actions">
                  <a href={`/admin/users/${u.id}`}>
                    View profile<span class="visually-hidden"> of {u.display_name}</span>
                  </a>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p>Check the spelling, or search with fewer letters. {can(m.agent.roles, 'users.add') ? <a href="/admin/users/new">Add a user</a> : null}</p>
      )}
      {page > 1 || m.hasNext ? (
        <nav aria-label="Pages of results" class="pagination">
          {page > 1 ? <a href={link(page - 1)}>Previous page</a> : null}
          {m.hasNext && !m.lastPage ? <a href={link(page + 1)}>Next page</a> : null}
          {m.hasNext && m.lastPage ? <span>More users match: type more of the name or email to narrow the search.</span> : null}
        </nav>
      ) : null}
    </AdminLayout>
  );
}

export interface AddUserValues {
  name: string;
  email: string;
  nationalId: string;
}

export function AddUserPage(m: AdminContext & { values: AddUserValues; errors: FieldError[]; nationalId: NationalIdFormat; existing?: User }) {
  const error = (field: string) => m.errors.find((e) => e.field === field);
  return (
    <AdminLayout {...m} title="Add a user">
      <h1>Add a user</h1>
      <ErrorSummary fields={m.errors} />
      {m.existing ? (
        <p>
          <a href={`/admin/users/${m.existing.id}`}>View the profile of {m.existing.display_name}</a>
        </p>
      ) : null}
      <form method="post" action="/admin/users/new" novalidate>
        <CsrfField token={m.csrfToken} />
        <Field id="name" label="Full name" error={error('name')}>
          <input type="text" id="name" name="name" value={m.values.name} maxLength={100} autoComplete="off" aria-invalid={error('name') ? 'true' : undefined} />
        </Field>
        <Field id="email" label="Email address" hint="Enrolment emails and notices go here." error={error('email')}>
          <input type="email" id="email" name="email" value={m.values.email} maxLength={254} autoComplete="off" aria-invalid={error('email') ? 'true' : undefined} />
        </Field>
        <Field id="nationalId" label={`${m.nationalId.label} (optional)`} hint="Needed for self-service. It is stored so that it can be checked, never shown again." error={error('nationalId')}>
          <input type="text" id="nationalId" name="nationalId" value={m.values.nationalId} maxLength={32} autoComplete="off" aria-invalid={error('nationalId') ? 'true' : undefined} />
        </Field>
        <button type="submit">Add user</button>
      </form>
    </AdminLayout>
  );
}


// ------------------------------------------------------------------ profile

type Tab = 'details' | 'authenticators' | 'activity';

function ProfileLayout(m: AdminContext & { user: User; tab: Tab; flash?: string | null; error?: string | null; children: ComponentChildren; data?: Record<string, string> }) {
  const tabs: [Tab, string, string][] = [
    ['details', 'Details', `/admin/users/${m.user.id}`],
    ['authenticators', 'Authenticators', `/admin/users/${m.user.id}/authenticators`],
    ['activity', 'Activity', `/admin/users/${m.user.id}/activity`],
  ];
  const current = tabs.find((t) => t[0] === m.tab)!;
  return (
    <AdminLayout {...m} title={`${current[1]} – ${m.user.display_name}`} page="admin-profile" data={m.data}>
      <span class="caption">User profile</span>
      <h1>
        {m.user.display_name} <StatusTag status={m.user.status} />
      </h1>
      <ErrorSummary message={m.error ?? null} />
      <Flash message={m.flash} />
      <nav aria-label="Profile sections" class="tabs">
        <ul>
          {tabs.map(([key, label, href]) => (
            <li>
              <a href={href} aria-current={key === m.tab ? 'page' : undefined}>
                {label}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      {m.children}
    </AdminLayout>
  );
}

export function DetailsTab(m: AdminContext & { user: User; roles: Role[]; flash?: string | null; error?: string | null; nationalId: NationalIdFormat; errors?: FieldError[] }) {
  const allowed = (p: Permission) => can(m.agent.roles, p);
  const own = m.agent.user.id === m.user.id;
  const nationalIdError = m.errors?.find((e) => e.field === 'nationalId');
  return (
    <ProfileLayout {...m} tab="details">
      <h2>Details</h2>
      <dl class="summary">
        <dt>Name</dt>
        <dd>{m.user.display_name}</dd>
        <dt>Email address</dt>
        <dd>{m.user.email}</dd>
        <dt>User ID</dt>
        <dd>
          <code>{m.user.id}</code>
        </dd>
        <dt>Status</dt>
        <dd>{statusLabels[m.user.status]}</dd>
        <dt>{m.nationalId.label}</dt>
        <dd>{m.user.national_id_hash ? 'Recorded (it cannot be shown)' : 'Not recorded'}</dd>
        <dt>Added</dt>
        <dd>{formatTime(m.user.created_at)}</dd>
        <dt>Roles</dt>
        <dd>{m.roles.length ? m.roles.map((r) => roleLabels[r]).join(', ') : 'None'}</dd>
      </dl>
      {own ? <p class="notice">This is your own account. Agents cannot change their own account here.</p> : null}
      {!own && allowed('users.edit') ? (
        <>
          <h2 id="national-id">{m.user.national_id_hash ? `Change ${m.nationalId.label}` : `Add ${m.nationalId.label}`}</h2>
          <form method="post" action={`/admin/users/${m.user.id}/national-id`} novalidate>
            <CsrfField token={m.csrfToken} />
            <Field id="nationalId" label={m.nationalId.label} hint="The person uses it to add an authenticator themselves. It will not be shown again." error={nationalIdError}>
              <input type="text" id="nationalId" name="nationalId" maxLength={32} autoComplete="off" aria-invalid={nationalIdError ? 'true' : undefined} />
            </Field>
            <button type="submit" class="secondary">
              Save {m.nationalId.label}
            </button>
          </form>
          {m.user.failed_signins > 0 ? (
            <>
              <h2>Failed sign-ins</h2>
              <p>
                {m.user.failed_signins >= 100
                  ? `Sign-in is locked after ${m.user.failed_signins} failed attempts in a row.`
                  : `${m.user.failed_signins} failed sign-in attempts in a row: each new attempt waits longer.`}
              </p>
              <form method="post" action={`/admin/users/${m.user.id}/status`}>
                <CsrfField token={m.csrfToken} />
                <input type="hidden" name="action" value="unlock" />
                <button type="submit" class="secondary">
                  Clear failed sign-ins
                </button>
              </form>
            </>
          ) : null}
          <h2>Account status</h2>
          <form method="post" action={`/admin/users/${m.user.id}/status`}>
            <CsrfField token={m.csrfToken} />
            {m.user.status === 'suspended' ? (
              <>
                <input type="hidden" name="action" value="reactivate" />
                <p>Suspended users cannot sign in.</p>
                <button type="submit" class="secondary">
                  Reactivate user
                </button>
              </>
            ) : (
              <>
                <input type="hidden" name="action" value="suspend" />
                <p>Suspending signs the person out everywhere and stops them signing in until they are reactivated.</p>
                <button type="submit" class="warning">
                  Suspend user
                </button>
              </>
            )}
          </form>
        </>
      ) : null}
      {!own && allowed('roles.manage') ? (
        <>
          <h2 id="roles">Registration authority roles</h2>
          <form method="post" action={`/admin/users/${m.user.id}/roles`}>
            <CsrfField token={m.csrfToken} />
            <fieldset class="checkboxes">
              <legend>Roles this person holds</legend>
              {ROLES.map((r) => (
                <div class="checkbox">
                  <input type="checkbox" id={`role-${r}`} name="roles" value={r} checked={m.roles.includes(r)} />
                  <label for={`role-${r}`}>
                    {roleLabels[r]}
                    <span class="hint">{roleDescriptions[r]}</span>
                  </label>
                </div>
              ))}
            </fieldset>
            <button type="submit" class="secondary">
              Save roles
            </button>
          </form>
        </>
      ) : null}
    </ProfileLayout>
  );
}

export interface OutstandingEnrolment {
  flow: Flow;
  status: EnrolmentStatus;
  method: EnrolmentMethod;
  issuedBy: string;
}

const methodLabels: Record<EnrolmentMethod, string> = { link: 'Link', email: 'Enrolment email', code: '9-character code', cli: 'Link (command line)' };

function EnrolmentStatusText(props: { flow: Flow; status: EnrolmentStatus; live: boolean }) {
  return (
    <span
      class={`badge enrolment-${props.status}`}
      data-enrolment-status={props.status}
      data-status-url={props.live && props.status === 'pending' ? `/admin/enrolments/${props.flow.id}/status` : undefined}
    >
      {enrolmentStatusLabels[props.status]}
    </span>
  );
}

/** Model, certification, attestation and sync of a passkey, and the FIDO Alliance's warning when its model has one. */
function PasskeyFacts(props: { standing: PasskeyStanding; provider: ComponentChildren }) {
  const s = props.standing;
  return (
    <>
      {s.attested && s.model ? <span data-model>{s.model}</span> : props.provider}
      <ul class="facts">
        <li data-certification>{s.attested ? certificationLabel(s.certification) : 'Certification unknown'}</li>
        <li data-attestation>Attestation: {s.attested ? 'Verified' : 'None'}</li>
        <li data-sync>{s.deviceBound ? 'Device-bound' : 'Synced'}</li>
      </ul>
      {s.compromised ? (
        <p class="warning" data-compromised={s.compromised.status}>
          <strong>Security problem reported by the FIDO Alliance:</strong> {s.compromised.words}.{' '}
          {s.compromised.consequence === 'refuse' ? 'The policy stops it signing in.' : 'The policy stops it counting for AAL3.'}
        </p>
      ) : null}
    </>
  );
}

export function AuthenticatorsTab(
  m: AdminContext & {
    user: User;
    authenticators: Authenticator[];
    /** What is known of each passkey (by authenticator id): model, certification, attestation, sync, compromise. */
    standings: Map<string, PasskeyStanding>;
    issuers: Map<string, string>;
    enrolments: OutstandingEnrolment[];
    flash?: string | null;
    error?: string | null;
  },
) {
  const allowed = (p: Permission) => can(m.agent.roles, p);
  const own = m.agent.user.id === m.user.id;
  return (
    <ProfileLayout {...m} tab="authenticators">
      <h2 id="authenticators">Authenticators</h2>
      {own ? (
        <p class="notice" data-own-account>
          You can’t change your own authenticators here. Use your <a href="/settings">Login and security settings</a>, or ask another agent.
        </p>
      ) : null}
      {m.authenticators.length ? (
        <table aria-labelledby="authenticators">
          <thead>
            <tr>
              <th scope="col">Type and name</th>
              <th scope="col">Model</th>
              <th scope="col">Assurance</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">Issued by</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {m.authenticators.map((a) => {
              const shown = m.kinds.displayOf(a, m.user);
              const assurance = m.kinds.assuranceOf(a, m.user);
              const standing = m.standings.get(a.id);
              const refused = standing?.compromised?.consequence === 'refuse';
              return (
              <tr data-authenticator-id={a.id} data-kind={a.type}>
                <td data-label="Type and name">
                  {shown.label}: <strong>{a.name}</strong>
                  {shown.badges ? (
                    <>
                      <br />
                      {shown.badges}
                    </>
                  ) : null}
                </td>
                <td data-label="Model">{standing ? <PasskeyFacts standing={standing} provider={shown.provider} /> : (shown.provider ?? '–')}</td>
                <td data-label="Assurance" data-aal={refused ? undefined : assurance?.aal}>
                  {refused ? 'Can’t sign in' : assurance ? `AAL${assurance.aal}` : 'Not on its own'}
                </td>
                <td data-label="Created">{formatTime(a.created_at)}</td>
                <td data-label="Last used">{formatTime(a.last_used_at)}</td>
                <td data-label="Issued by">{a.issued_by ? (m.issuers.get(a.issued_by) ?? 'A former agent') : 'The user'}</td>
                <td class="actions">
                  {allowed('authenticators.remove') && !own ? (
                    <a href={`/admin/users/${m.user.id}/authenticators/${a.id}/remove`}>
                      Remove<span class="visually-hidden"> {a.name}</span>
                    </a>
                  ) : null}
                </td>
              </tr>
              );
            })}
          </tbody>
        </table>
      ) : (
        <p>This user has no authenticators.</p>
      )}
      {allowed('authenticators.issue') && !own ? (
        <p>
          <a class="button" href={`/admin/users/${m.user.id}/issue`}>
            Issue other authenticator
          </a>
        </p>
      ) : null}
      <h2 id="enrolments">Links and codes issued</h2>
      {m.enrolments.length ? (
        <table aria-labelledby="enrolments">
          <thead>
            <tr>
              <th scope="col">Method</th>
              <th scope="col">Issued</th>
              <th scope="col">Expires</th>
              <th scope="col">Issued by</th>
              <th scope="col">Status</th>
              <th scope="col">
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {m.enrolments.map((e) => (
              <tr data-enrolment-id={e.flow.id}>
                <td data-label="Method">{methodLabels[e.method]}</td>
                <td data-label="Issued">{formatTime(e.flow.created_at)}</td>
                <td data-label="Expires">{formatTime(e.flow.expires_at)}</td>
                <td data-label="Issued by">{e.issuedBy}</td>
                <td data-label="Status">
                  <EnrolmentStatusText flow={e.flow} status={e.status} live />
                </td>
                <td class="actions">
                  {allowed('authenticators.issue') && !own && e.status === 'pending' ? <RevokeForm {...m} flowId={e.flow.id} /> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p>No links or codes have been issued to this user.</p>
      )}
      {/* The statuses above update live (web/app.ts watchEnrolments); screen readers hear the change here. */}
      <div class="visually-hidden" role="status" aria-live="polite" id="enrolment-announcer"></div>
    </ProfileLayout>
  );
}

function RevokeForm(m: { csrfToken: string; user: User; flowId: string }) {
  return (
    <form method="post" action={`/admin/users/${m.user.id}/enrolments/${m.flowId}/revoke`} class="inline" data-revoke-form>
      <CsrfField token={m.csrfToken} />
      <button type="submit" class="link-button">
        Revoke
      </button>
    </form>
  );
}

export function ActivityTab(m: AdminContext & { user: User; events: AuditRow[]; nextBefore?: number }) {
  return (
    <ProfileLayout {...m} tab="activity">
      <h2 id="activity">Activity</h2>
      <AuditTable events={m.events} labelledBy="activity" kinds={m.kinds} />
      {m.nextBefore ? (
        <p>
          <a href={`/admin/users/${m.user.id}/activity?before=${m.nextBefore}`}>Older activity</a>
        </p>
      ) : null}
    </ProfileLayout>
  );
}

function who(email: string | null, name: string | null, id: string | null): string {
  if (!id) return 'Latchkey';
  return name ? `${name} (${email})` : 'A removed user';
}

/** Who did it: a person, an API token (no person acts through one), or Latchkey itself. */
function actorOf(e: AuditRow): string {
  if (e.actor_token_id) return apiTokenActor(e.actor_token_id, e.actor_token_name);
  return who(e.actor_email, e.actor_name, e.actor_user_id);
}

/** "API token ‘HR feed’ (id …)": the id too, since names need not be unique (and it finds the token's actions). */
function apiTokenActor(id: string, name: string | null): string {
  return `API token ‘${name ?? 'unknown'}’ (${id})`;
}

function AuditTable(props: { events: AuditRow[]; labelledBy: string; kinds: KindRegistry }) {
  if (!props.events.length) return <p>No activity recorded.</p>;
  const labels = auditEventLabelsFor(props.kinds);
  return (
    <table aria-labelledby={props.labelledBy}>
      <thead>
        <tr>
          <th scope="col">When</th>
          <th scope="col">What</th>
          <th scope="col">By</th>
          <th scope="col">For</th>
          <th scope="col">From</th>
        </tr>
      </thead>
      <tbody>
        {props.events.map((e) => (
          <tr data-event={e.event}>
            <td data-label="When">{formatTime(e.at)}</td>
            <td data-label="What">
              {auditEventLabel(labels, e)}
              {e.outcome === 'failure' ? ' (failed)' : e.outcome === 'refused' ? ' (refused)' : ''}
              {describeRefusal(e) ? <span class="hint">Why: {describeRefusal(e)}</span> : null}
            </td>
            <td data-label="By" data-actor-token={e.actor_token_id ?? undefined}>
              {actorOf(e)}
            </td>
            <td data-label="For">{e.subject_user_id ? who(e.subject_email, e.subject_name, e.subject_user_id) : '–'}</td>
            <td data-label="From">{e.ip ?? '–'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

// ------------------------------------------------------------------ issuing

export function ChooseTypePage(m: AdminContext & { user: User; error?: string | null }) {
  return (
    <AdminLayout {...m} title={`Issue other authenticator – ${m.user.display_name}`}>
      <a href={`/admin/users/${m.user.id}/authenticators`} class="back-link">
        Back to {m.user.display_name}’s authenticators
      </a>
      <h1>Select authenticator type</h1>
      <ErrorSummary fields={m.error ? [{ field: `type-${m.kinds.agentIssueChoices()[0]?.value ?? 'passkey'}`, message: m.error }] : []} />
      <form method="post" action={`/admin/users/${m.user.id}/issue`}>
        <CsrfField token={m.csrfToken} />
        <fieldset class="radios">
          <legend>Which authenticator do you want to issue to {m.user.display_name}?</legend>
          {m.kinds.agentIssueChoices().map((c) => (
            <div class="radio">
              <input type="radio" id={`type-${c.value}`} name="type" value={c.value} />
              <label for={`type-${c.value}`}>
                {c.label}
                <span class="hint">{c.hint}</span>
              </label>
            </div>
          ))}
        </fieldset>
        <button type="submit">Continue</button>
      </form>
    </AdminLayout>
  );
}

export function IssuePasskeyPage(m: AdminContext & { user: User; templates: EmailTemplate[]; securityKey?: boolean; metadataLoaded?: boolean }) {
  const what = m.securityKey ? 'security key' : 'passkey';
  // Each form says what the ceremony must register: an attested AAL3 security key, or any passkey the policy allows.
  const Requires = () => (m.securityKey ? <input type="hidden" name="requires" value="security-key" /> : null);
  return (
    <AdminLayout {...m} title={`${m.securityKey ? 'Register a security key (AAL3)' : 'Create a passkey'} – ${m.user.display_name}`}>
      <a href={`/admin/users/${m.user.id}/authenticators`} class="back-link">
        Back to {m.user.display_name}’s authenticators
      </a>
      <h1>{m.securityKey ? `Register a security key (AAL3) for ${m.user.display_name}` : `Create a passkey for ${m.user.display_name}`}</h1>
      {m.securityKey && !m.metadataLoaded ? (
        <div class="warning" role="alert">
          <p>
            <strong>No FIDO metadata is loaded, so no security key’s make and model can be confirmed: a security key can’t be issued yet.</strong> Ask your
            administrator to load it with <code>latchkey metadata import FILE</code> or <code>LATCHKEY_FIDO_METADATA_URL</code>.
          </p>
        </div>
      ) : null}
      <h2>Before you start</h2>
      {m.securityKey ? (
        <ol class="steps">
          <li>Give the person a FIDO2-certified security key that your organisation allows. They need a PIN for it: they set one the first time they use it, if it has none.</li>
          <li>Set up a meeting with them, face to face or on a video call. They must register the key while you are there, on a computer with a USB port or NFC.</li>
          <li>When asked, they plug in the key (or hold it to the device), enter its PIN and touch it. Their browser may ask whether to share the key’s make and model: they must allow it.</li>
          <li>Passkeys on phones, computers or password managers are refused: only a security key gives the highest level of sign-in (AAL3).</li>
        </ol>
      ) : (
        <ol class="steps">
          <li>Set up a meeting with the person, face to face or on a video call. They must register the passkey while you are there.</li>
          <li>Ask them to turn on Bluetooth on their device (and on their phone, if they will use one with a computer).</li>
          <li>
            On Windows with Windows Hello, the browser offers to save the passkey on Windows. To use a phone instead, they select “Change”, then “iPhone, iPad or Android
            device”, and scan the QR code. A device already registered with Windows Hello cannot register a second passkey: they can use a phone, tablet or security key.
          </li>
          <li>When you have both read this and are ready, choose how to send them the link or code.</li>
        </ol>
      )}
{m.securityKey && !m.metadataLoaded ? null : (
        <>
      <h2>Generate link</h2>
      <p>A single-use link to copy into an email or the chat of your video call.</p>
      <form method="post" action={`/admin/users/${m.user.id}/enrolments`}>
        <CsrfField token={m.csrfToken} />
        <input type="hidden" name="method" value="link" />
        <Requires />
        <button type="submit">Generate link</button>
      </form>
      <h2>Generate 9-character code</h2>
      <p>
        A code to read out or send by message. It expires {describeDuration(m.config.enrolmentCodeSeconds)} after you generate it. The person enters it with their email address at{' '}
        <strong>{m.config.origin}/enrol</strong>.
      </p>
      <form method="post" action={`/admin/users/${m.user.id}/enrolments`}>
        <CsrfField token={m.csrfToken} />
        <input type="hidden" name="method" value="code" />
        <Requires />
        <button type="submit">Generate 9-character code</button>
      </form>
      <h2>Send enrolment email</h2>
      <form method="post" action={`/admin/users/${m.user.id}/enrolments`}>
        <CsrfField token={m.csrfToken} />
        <input type="hidden" name="method" value="email" />
        <Requires />
        <TemplateSelect templates={m.templates} />
        <button type="submit">Proceed and send email</button>
      </form>
        </>
      )}
      {m.securityKey && !m.metadataLoaded ? null : (
        <p class="hint">
          The link or code registers a {what}; any earlier link or code for {m.user.display_name} stops working.
        </p>
      )}
    </AdminLayout>
  );
}

function TemplateSelect(props: { templates: EmailTemplate[]; id?: string }) {
  const id = props.id ?? 'template';
  return (
    <div class="field">
      <label for={id}>Email template</label>
      <select id={id} name="template">
        {props.templates.map((t) => (
          <option value={t.id} selected={t.is_default === 1}>
            {t.is_default ? `${t.name} (default)` : t.name}
          </option>
        ))}
      </select>
    </div>
  );
}

/**
 * What an agent sees after issuing (the answer to the issuing form's redirect): the link or code the first time the
 * page loads, after that a line saying it was shown once with a way to issue a new one; its live status; Revoke.
 */
export function IssuedPage(
  m: AdminContext & {
    user: User;
    flow: Flow;
    method: EnrolmentMethod;
    status: EnrolmentStatus;
    /** The link and its token, or the code: only on the one load that shows them. */
    link?: string;
    token?: string;
    code?: string;
    emailedTo?: string;
    templates: EmailTemplate[];
    error?: string | null;
    serverNow: number;
  },
) {
  const title = m.method === 'code' ? '9-character code generated' : m.method === 'email' ? 'Enrolment email sent' : 'Link generated';
  const what = m.method === 'code' ? 'code' : 'link';
  const pending = m.status === 'pending';
  return (
    <AdminLayout {...m} title={`${title} – ${m.user.display_name}`} page="admin-issued" data={{ 'expires-at': String(m.flow.expires_at), 'server-now': String(m.serverNow) }}>
      <h1>{title}</h1>
      <ErrorSummary message={m.error ?? null} />
      {m.emailedTo ? (
        <div class="notice success" role="status">
          An enrolment email with a single-use link was sent to {m.emailedTo}. It stops working at {formatTime(m.flow.expires_at)}.
        </div>
      ) : null}
      {m.link ? (
        <>
          <p>
            Send this single-use link to {m.user.display_name} by email, or paste it into the chat of your video call. It works once and stops working at{' '}
            {formatTime(m.flow.expires_at)}. It is shown only this once: copy or send it now.
          </p>
          <div class="field">
            <label for="enrolment-link">Enrolment link</label>
            <input type="text" id="enrolment-link" value={m.link} readOnly data-copy-source />
          </div>
          <div class="actions">
            <button type="button" class="secondary" data-copy-button="enrolment-link" hidden>
              Copy link
            </button>
          </div>
          <form method="post" action={`/admin/users/${m.user.id}/enrolments/${m.flow.id}/email`}>
            <CsrfField token={m.csrfToken} />
            <input type="hidden" name="token" value={m.token} />
            <TemplateSelect templates={m.templates} id="link-template" />
            <button type="submit" class="secondary">
              Send link by email to {m.user.email}
            </button>
          </form>
        </>
      ) : null}
      {m.code ? (
        <>
          <p>Read this code to {m.user.display_name}, or send it by message. They enter it with their email address at:</p>
          <p>
            <strong>{m.config.origin}/enrol</strong>
          </p>
          <p class="enrolment-code" id="enrolment-code">
            <span aria-hidden="true">{formatCode(m.code)}</span>
            {/* Read out one character at a time, as the agent will say it. */}
            <span class="visually-hidden">Code: {[...m.code].join(' ')}</span>
          </p>
          <p>
            <span id="code-countdown" data-countdown>
              Expires at {formatTime(m.flow.expires_at)}
            </span>
          </p>
          <p class="warning">Never share the code with anyone but {m.user.display_name}. It is shown only this once.</p>
        </>
      ) : null}
      {m.method !== 'email' && !m.link && !m.code ? (
        // Shown once (a reload, another tab): the server keeps only its hash, and a reload must not issue a new one.
        <div id="shown-once">
          <p>
            The {what} was shown once, to the agent who generated it, and is not shown again.{' '}
            {pending ? `If ${m.user.display_name} did not get it, generate a new ${what}: this one then stops working.` : null}
          </p>
          <form method="post" action={`/admin/users/${m.user.id}/enrolments`}>
            <CsrfField token={m.csrfToken} />
            <input type="hidden" name="method" value={m.method === 'code' ? 'code' : 'link'} />
            <button type="submit" class="secondary">
              Generate a new {what}
            </button>
          </form>
        </div>
      ) : null}
      <h2>Status</h2>
      <p>
        {m.user.display_name}: <EnrolmentStatusText flow={m.flow} status={m.status} live />
      </p>
      <div class="visually-hidden" role="status" aria-live="polite" id="enrolment-announcer"></div>
      <div class="actions">
        {pending ? <RevokeForm {...m} flowId={m.flow.id} /> : null}
        <a href={`/admin/users/${m.user.id}/authenticators`}>Back to {m.user.display_name}’s authenticators</a>
      </div>
    </AdminLayout>
  );
}

export function RemoveAuthenticatorPage(m: AdminContext & { user: User; authenticator: Authenticator; error?: string | null }) {
  return (
    <AdminLayout {...m} title={`Remove authenticator – ${m.user.display_name}`}>
      <a href={`/admin/users/${m.user.id}/authenticators`} class="back-link">
        Back to {m.user.display_name}’s authenticators
      </a>
      <h1>Remove authenticator</h1>
      <ErrorSummary fields={m.error ? [{ field: 'confirm', message: m.error }] : []} />
      <p>
        You are removing <strong>{m.authenticator.name}</strong>, {describePasskey(m.authenticator)}, from {m.user.display_name}’s profile. They will be signed out
        wherever they signed in with it, and told by email.
      </p>
      <form method="post" action={`/admin/users/${m.user.id}/authenticators/${m.authenticator.id}/remove`}>
        <CsrfField token={m.csrfToken} />
        <ConfirmCheckbox label={`I confirm I want to remove this passkey from ${m.user.display_name}’s profile`} error={m.error} />
        <div class="actions">
          <button type="submit" class="warning">
            Remove authenticator
          </button>
          <a href={`/admin/users/${m.user.id}/authenticators`}>Cancel</a>
        </div>
      </form>
    </AdminLayout>
  );
}

// ------------------------------------------------------------------ audit

export interface AuditFilterValues {
  event: string;
  actor: string;
  subject: string;
  from: string;
  to: string;
}

export function AuditPage(m: AdminContext & { filter: AuditFilterValues; events: AuditRow[]; nextBefore?: number; errors: FieldError[]; events_known: string[] }) {
  const query = new URLSearchParams(Object.entries(m.filter).filter(([, v]) => v) as [string, string][]);
  const error = (field: string) => m.errors.find((e) => e.field === field);
  return (
    <AdminLayout {...m} title="Audit log">
      <h1>Audit log</h1>
      <ErrorSummary fields={m.errors} />
      <form method="get" action="/admin/audit" class="filters" aria-label="Filter the audit log">
        <div class="field">
          <label for="event">Event</label>
          <select id="event" name="event">
            <option value="">All events</option>
            {m.events_known.map((e) => (
              <option value={e} selected={m.filter.event === e}>
                {auditEventLabelsFor(m.kinds)[e] ?? e}
              </option>
            ))}
          </select>
        </div>
        <Field id="actor" label="By (email address)" hint="Or an API token’s ID or name, for what it did" error={error('actor')}>
          <input type="text" id="actor" name="actor" value={m.filter.actor} maxLength={254} autoComplete="off" />
        </Field>
        <Field id="subject" label="For (email address)" error={error('subject')}>
          <input type="email" id="subject" name="subject" value={m.filter.subject} maxLength={254} />
        </Field>
        <Field id="from" label="From date" hint="For example 2026-11-01" error={error('from')}>
          <input type="date" id="from" name="from" value={m.filter.from} />
        </Field>
        <Field id="to" label="To date (inclusive)" error={error('to')}>
          <input type="date" id="to" name="to" value={m.filter.to} />
        </Field>
        <div class="actions">
          <button type="submit">Apply filters</button>
          <a class="button secondary" href={`/admin/audit.csv${query.size ? `?${query}` : ''}`} download>
            Export CSV
          </a>
        </div>
      </form>
      <h2 id="events">Events</h2>
      <AuditTable events={m.events} labelledBy="events" kinds={m.kinds} />
      {m.nextBefore ? (
        <p>
          <a href={`/admin/audit?${new URLSearchParams([...query, ['before', String(m.nextBefore)]])}`}>Older events</a>
        </p>
      ) : null}
    </AdminLayout>
  );
}

// ------------------------------------------------------------------ templates

export function TemplatesPage(m: AdminContext & { templates: EmailTemplate[]; flash?: string | null }) {
  return (
    <AdminLayout {...m} title="Email templates">
      <h1>Email templates</h1>
      <Flash message={m.flash} />
      <table aria-label="Email templates">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Subject</th>
            <th scope="col">Last changed</th>
            <th scope="col">
              <span class="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {m.templates.map((t) => (
            <tr data-template-id={t.id}>
              <td data-label="Name">
                {t.name}
                {t.is_default ? ' (default)' : ''}
              </td>
              <td data-label="Subject">{t.subject}</td>
              <td data-label="Last changed">{formatTime(t.updated_at)}</td>
              <td class="actions">
                <a href={`/admin/templates/${t.id}`}>
                  Edit<span class="visually-hidden"> {t.name}</span>
                </a>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <a class="button" href="/admin/templates/new">
        Add a template
      </a>
    </AdminLayout>
  );
}

export function TemplateEditPage(
  m: AdminContext & {
    template?: EmailTemplate;
    values: { name: string; subject: string; body: string };
    errors: FieldError[];
    preview?: { subject: string; body: string };
  },
) {
  const error = (field: string) => m.errors.find((e) => e.field === field);
  const action = m.template ? `/admin/templates/${m.template.id}` : '/admin/templates/new';
  const title = m.template ? `Edit template: ${m.template.name}` : 'Add a template';
  return (
    <AdminLayout {...m} title={title}>
      <a href="/admin/templates" class="back-link">
        Back to email templates
      </a>
      <h1>{title}</h1>
      <ErrorSummary fields={m.errors} />
      <form method="post" action={action} novalidate>
        <CsrfField token={m.csrfToken} />
        <Field id="name" label="Template name" error={error('name')}>
          <input type="text" id="name" name="name" value={m.values.name} maxLength={100} />
        </Field>
        <Field id="subject" label="Subject" error={error('subject')}>
          <input type="text" id="subject" name="subject" value={m.values.subject} maxLength={200} />
        </Field>
        <Field id="body" label="Email text" hint="Plain text. Placeholders are replaced when the email is sent." error={error('body')}>
          <textarea id="body" name="body" rows={14} maxLength={10000}>
            {m.values.body}
          </textarea>
        </Field>
        <h2 id="placeholders">Placeholders</h2>
        <dl class="summary" aria-labelledby="placeholders">
          {Object.entries(PLACEHOLDERS).map(([key, text]) => (
            <>
              <dt>
                <code>{`{{${key}}}`}</code>
              </dt>
              <dd>{text}</dd>
            </>
          ))}
        </dl>
        <div class="actions">
          <button type="submit" name="action" value="save">
            Save template
          </button>
          <button type="submit" name="action" value="preview" class="secondary">
            Preview
          </button>
        </div>
      </form>
      {m.preview ? (
        <section aria-labelledby="preview-title" class="preview">
          <h2 id="preview-title">Preview</h2>
          <p>
            <strong>Subject:</strong> {m.preview.subject}
          </p>
          <pre class="email-preview">{m.preview.body}</pre>
        </section>
      ) : null}
      {m.template && !m.template.is_default ? (
        <form method="post" action={`/admin/templates/${m.template.id}/delete`}>
          <CsrfField token={m.csrfToken} />
          <h2>Delete this template</h2>
          <button type="submit" class="warning">
            Delete template
          </button>
        </form>
      ) : m.template ? (
        <p>This is the default template: you can change it, but not delete it.</p>
      ) : null}
    </AdminLayout>
  );
}

export function NoRolePage(m: { config: Config; csrfToken: string; user: User }) {
  return (
    <Layout title="No access to the console" rpName={m.config.rpName} csrfToken={m.csrfToken} signedIn={{ displayName: m.user.display_name }}>
      <h1>You do not have access to the registration authority console</h1>
      <ErrorSummary message={errorCatalogue.no_console_role.message} />
      <p>
        <a href="/settings">Go to your Login and security settings</a>
      </p>
    </Layout>
  );
}
