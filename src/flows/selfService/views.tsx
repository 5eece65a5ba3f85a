/**
 * Pages of self-service "Add an authenticator to your profile" (seed 001):
 * start, your details with a CAPTCHA, the emailed code, the choice of
 * authenticator, each branch, and the confirmation.
 */
import type { ComponentChildren } from 'preact';
import type { Config } from '../../config/index.js';
import type { FieldError } from '../../errors.js';
import type { SelfServiceChoice } from '../../strategies/authenticatorKind.js';
import { ConfirmCheckbox, CsrfField, ErrorSummary, Field, Layout, NoScript, PlacementChoice, StatusRegion, CodeField } from '../../views/layout.js';
import type { NationalIdFormat } from '../../users/nationalId.js';
import { describeDuration } from '../../views/describeDuration.js';
import { RaContact } from '../../views/raContact.js';
import { EMAIL_CODE_SECONDS } from './limits.js';

/** What every self-service page needs; a kind's own pages (src/strategies/<kind>/) take it too. */
export interface Base {
  config: Config;
  csrfToken: string;
  /** Started from Login and security settings: no identity check (two steps, not four), and the first Back goes there. */
  fromSettings?: boolean;
}

/**
 * The steps as people count them: the identity check's details and code, then the choice and the setting up. From
 * settings the person is already known, so only the last two remain.
 */
export type Step = 'details' | 'code' | 'choose' | 'set-up';
const STEPS: Step[] = ['details', 'code', 'choose', 'set-up'];
const SETTINGS_STEPS: Step[] = ['choose', 'set-up'];

/** A page of the flow, with its GOV.UK Back link (to the page before) and its step caption above the heading. */
export function Page(props: Base & { title: string; page?: string; children: ComponentChildren; data?: Record<string, string>; back?: string; step?: Step }) {
  const steps = props.fromSettings ? SETTINGS_STEPS : STEPS;
  const n = props.step ? steps.indexOf(props.step) + 1 : 0;
  return (
    <Layout title={props.title} rpName={props.config.rpName} csrfToken={props.csrfToken} page={props.page ?? 'self-service'} data={props.data}>
      {props.back ? (
        <a href={props.back} class="back-link">
          Back
        </a>
      ) : null}
      {n ? (
        <p class="caption step">
          {`Step ${n} of ${steps.length}`}
        </p>
      ) : null}
      {props.children}
    </Layout>
  );
}

/** Back from the choice of authenticator: to settings where the flow started there; after the identity check, the code is used, so to the start. */
const backFromChoice = (m: Base) => (m.fromSettings ? '/settings' : '/add-authenticator');


export function StartPage(m: Base & { nationalId: NationalIdFormat }) {
  return (
    <Page {...m} title="Add an authenticator to your profile" back="/signin">
      <h1>Add an authenticator to your profile</h1>
      <p>Add a passkey, an authenticator app or your work account to your {m.config.organisation} profile, to get access to services that need it.</p>
      <h2>What you'll need</h2>
      <ul>
        <li>the email address on your profile, where we will send you a code</li>
        <li>
          your {m.nationalId.label}: you can only add an authenticator this way if it is on your profile
        </li>
        <li>for an authenticator app: an app such as Microsoft Authenticator or Google Authenticator on your phone</li>
      </ul>
      <h2>How it works</h2>
      <ol class="steps">
        <li>Enter your email address and {m.nationalId.label}, and complete a check that you are a person.</li>
        <li>Enter the code we email you.</li>
        <li>Choose a passkey, an authenticator app or your work account, and set it up.</li>
      </ol>
      <form method="post" action="/add-authenticator">
        <CsrfField token={m.csrfToken} />
        <button type="submit">Start</button>
      </form>
    </Page>
  );
}

export function DetailsPage(m: Base & { flowId: string; nationalId: NationalIdFormat; values: { email: string; nationalId: string }; errors: FieldError[]; message?: string | null }) {
  return (
    <Page {...m} title="Enter your details" page="self-service-details" back="/add-authenticator" step="details">
      <h1>Enter your details</h1>
      <ErrorSummary message={m.message ?? null} fields={m.errors} />
      <form method="post" action={`/add-authenticator/${m.flowId}/details`} novalidate id="details-form">
        <CsrfField token={m.csrfToken} />
        <Field id="email" label="Email address" hint="The email address on your profile." errors={m.errors}>
          <input type="email" id="email" name="email" value={m.values.email} autoComplete="email" maxLength={254} />
        </Field>
        <Field id="nationalId" label={m.nationalId.label} hint={m.nationalId.hint} errors={m.errors}>
          <input type="text" id="nationalId" name="nationalId" value={m.values.nationalId} autoComplete="off" maxLength={32} spellcheck={false} />
        </Field>
        <div class={`field${m.errors.some((e) => e.field === 'captcha') ? ' field-error' : ''}`}>
          <p class="label">Check you are a person</p>
          {m.errors.some((e) => e.field === 'captcha') ? (
            <p class="error-message">
              <span class="visually-hidden">Error: </span>
              {m.errors.find((e) => e.field === 'captcha')!.message}
            </p>
          ) : null}
          {/* The error summary links here (#captcha): the status is what there is to read. */}
          <p class="hint" id="captcha" tabIndex={-1} role="status" aria-live="polite" data-captcha-status>
            Your browser does a short calculation to show you are a person. It starts on its own.
          </p>
          <input type="hidden" name="captcha" id="captcha-solution" value="" data-captcha-url="/add-authenticator/captcha" />
        </div>
        <NoScript />
        <button type="submit">Continue</button>
      </form>
    </Page>
  );
}

export function ProblemPage(m: Base & { flowId: string; nationalId: NationalIdFormat }) {
  return (
    <Page {...m} title="Problem adding authenticator" back={`/add-authenticator/${m.flowId}/details`}>
      <h1>Problem adding authenticator</h1>
      <p>We could not find a profile that matches the details you entered. This can happen when:</p>
      <ul>
        <li>the email address is not the one on your profile</li>
        <li>the {m.nationalId.label} was not entered correctly</li>
        <li>your {m.nationalId.label} is not on your profile</li>
        <li>your profile is suspended</li>
      </ul>
      <p>
        <a href={`/add-authenticator/${m.flowId}/details`}>Check your details and try again</a>
      </p>
      <h2>If it still does not work</h2>
      <p>
        Your registration authority can check your profile, add your {m.nationalId.label} or give you an authenticator. Contact{' '}
        <RaContact config={m.config} />.
      </p>
    </Page>
  );
}

export function CodePage(m: Base & { flowId: string; email: string; errors: FieldError[]; message?: string | null; resent?: boolean; canResend: boolean }) {
  return (
    <Page {...m} title="Enter the code from your email" back={`/add-authenticator/${m.flowId}/details`} step="code">
      <h1>Enter the code from your email</h1>
      <ErrorSummary message={m.message ?? null} fields={m.errors} />
      {m.resent ? (
        <div class="notice success" role="status">
          We have sent a new code. It works for {describeDuration(EMAIL_CODE_SECONDS)}.
        </div>
      ) : null}
      <p>We have sent a 6-digit code to {m.email}. It works for {describeDuration(EMAIL_CODE_SECONDS)}.</p>
      <form method="post" action={`/add-authenticator/${m.flowId}/code`} novalidate>
        <CsrfField token={m.csrfToken} />
        <CodeField label="Code" errors={m.errors} />
        <button type="submit">Continue</button>
      </form>
      {m.canResend ? (
        <form method="post" action={`/add-authenticator/${m.flowId}/code/resend`}>
          <CsrfField token={m.csrfToken} />
          <p>
            Not received it? Check your junk folder, or{' '}
            <button type="submit" class="link-button">
              send a new code
            </button>
          </p>
        </form>
      ) : (
        <p>If the email has not arrived, start again later, or contact your registration authority.</p>
      )}
    </Page>
  );
}

export function ChoosePage(m: Base & { flowId: string; choices: SelfServiceChoice[]; errors: FieldError[] }) {
  return (
    <Page {...m} title="Select authenticator type" back={backFromChoice(m)} step="choose">
      <h1>Select authenticator type</h1>
      <ErrorSummary fields={m.errors} />
      <form method="post" action={`/add-authenticator/${m.flowId}/choose`}>
        <CsrfField token={m.csrfToken} />
        <fieldset class="radios">
          <legend>Which authenticator do you want to add?</legend>
          {m.choices.map((c, i) => {
            // The first option carries the field's id, so the error summary's link lands on it.
            const id = i === 0 ? 'type' : `type-${c.value.replace(/[^a-z0-9-]/g, '-')}`;
            return (
              <div class="radio">
                <input type="radio" id={id} name="type" value={c.value} />
                <label for={id}>
                  {c.label}
                  <span class="hint">{c.hint}</span>
                </label>
              </div>
            );
          })}
        </fieldset>
        <button type="submit">Continue</button>
      </form>
    </Page>
  );
}

/** A kind's first page: what comes next, and the box that confirms only the person has the authenticator. */
export function ConfirmOnlyYouPage(m: Base & { flowId: string; title: string; action: string; confirmLabel: string; errors: FieldError[]; children: ComponentChildren }) {
  return (
    <Page {...m} title={m.title} back={`/add-authenticator/${m.flowId}/choose`} step="set-up">
      <h1>{m.title}</h1>
      <ErrorSummary fields={m.errors} />
      {m.children}
      <form method="post" action={m.action}>
        <CsrfField token={m.csrfToken} />
        <ConfirmCheckbox label={m.confirmLabel} error={m.errors.find((e) => e.field === 'confirm')?.message} />
        <button type="submit">Continue</button>
      </form>
    </Page>
  );
}

export function DonePage(m: Base & { what: string; next: { href: string; label: string; service?: string } }) {
  return (
    <Page {...m} title="Authenticator added">
      <div class="panel-confirmation" role="status">
        <h1>Authenticator added</h1>
        <p>Your {m.what} has been added to your profile.</p>
      </div>
      {m.next.service ? (
        <>
          <p>We have sent an email to tell you. To continue to {m.next.service}, confirm it is you with it.</p>
          <p>
            <a class="button" href={m.next.href}>
              {m.next.label}
            </a>
          </p>
        </>
      ) : (
        <>
          <p>We have sent an email to tell you. You can now use it to sign in.</p>
          <p>
            <a href={m.next.href}>{m.next.label}</a>
          </p>
        </>
      )}
    </Page>
  );
}
