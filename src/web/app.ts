/**
 * The browser bundle: runs WebAuthn ceremonies for the server-rendered pages.
 * Each page says what it is with <body data-page>; nothing here runs inline, so
 * the CSP can forbid inline script.
 */
import { solveChallenge } from 'altcha-lib/v1';
import { isEmailAddress } from '../users/emailAddress.js';
import {
  browserSupportsWebAuthn,
  browserSupportsWebAuthnAutofill,
  startAuthentication,
  startRegistration,
  WebAuthnAbortService,
} from '@simplewebauthn/browser';

type Json = Record<string, unknown>;

class ApiError extends Error {
  constructor(readonly code: string, message: string, readonly fields: { field: string; message: string }[] = []) {
    super(message);
  }
}

const csrf = () => document.querySelector<HTMLMetaElement>('meta[name="csrf-token"]')?.content ?? '';

async function postJSON(url: string, body: Json): Promise<Json> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', 'x-csrf-token': csrf() },
      body: JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch {
    throw new ApiError('network', 'We could not reach the server. Check your connection and try again.');
  }
  const data = (await res.json().catch(() => ({}))) as Json & { error?: { code: string; message: string; fields?: { field: string; message: string }[] } };
  if (!res.ok) throw new ApiError(data.error?.code ?? 'unknown', data.error?.message ?? 'Something went wrong. Try again.', data.error?.fields);
  return data;
}

/** Plain words for what the browser said (WebAuthn L3 §5.1.3, §5.1.4 error names). */
type Ceremony = 'create' | 'signin' | 'check';

function explain(err: unknown, ceremony: Ceremony): string {
  if (err instanceof ApiError) return err.message;
  const name = (err as { name?: string })?.name;
  if (name === 'InvalidStateError' && ceremony === 'create') {
    return 'This device or security key already has a passkey for your account, so it cannot be registered again. Choose another device: another phone or tablet, or a different security key.';
  }
  if (name === 'NotAllowedError' || name === 'AbortError') {
    if (ceremony === 'create') {
      return 'The passkey was not set up. You may have cancelled, the request timed out, or your device could not confirm it is you with a fingerprint, face, PIN or screen lock. You can try again.';
    }
    return `${ceremony === 'signin' ? 'Sign-in with a passkey' : 'The passkey check'} did not finish. You may have cancelled, the request timed out, or no passkey for this site was found on this device. You can try again or use another device.`;
  }
  if (name === 'SecurityError') return 'Your browser refused to use a passkey on this site address. Check you are on the right site.';
  if (name === 'NotSupportedError') return 'This device does not support the kind of passkey needed. Try another device or a security key.';
  return 'Something went wrong with the passkey. Try again.';
}

function showError(message: string, fields: { field: string; message: string }[] = []): void {
  const summary = document.getElementById('error-summary');
  if (!summary) return alert(message || fields.map((f) => f.message).join('\n'));
  const body = summary.querySelector<HTMLElement>('[data-error-message]');
  if (body) {
    body.textContent = message;
    body.hidden = !message;
  }
  summary.querySelector('ul')?.remove();
  if (fields.length) {
    const list = document.createElement('ul');
    for (const f of fields) {
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.href = `#${f.field}`;
      a.textContent = f.message;
      li.append(a);
      list.append(li);
    }
    summary.append(list);
  }
  summary.hidden = false;
  summary.focus();
  setStatus('');
}

function clearError(): void {
  const summary = document.getElementById('error-summary');
  if (summary) summary.hidden = true;
}

function setStatus(message: string): void {
  const status = document.getElementById('status');
  if (!status) return;
  status.textContent = message;
  status.hidden = !message;
}

/**
 * Check the fields before sending, with the words each page puts on its inputs
 * (data-required-message, data-format-message): the server's schema messages
 * are written for developers ("email must match pattern …").
 */
function checkFields(form: HTMLFormElement): { field: string; message: string }[] {
  const problems: { field: string; message: string }[] = [];
  for (const input of Array.from(form.querySelectorAll<HTMLInputElement>('input[data-required-message], input[data-format-message]'))) {
    const value = input.value.trim();
    const message = !value ? input.dataset.requiredMessage : input.type === 'email' && !isEmailAddress(value) ? input.dataset.formatMessage : undefined;
    if (message) problems.push({ field: input.id, message });
    if (message) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }
  return problems;
}

function formValues(form: HTMLFormElement): Record<string, string> {
  const out: Record<string, string> = {};
  new FormData(form).forEach((v, k) => {
    if (typeof v === 'string' && k !== '_csrf') out[k] = v;
  });
  return out;
}

function busy(button: HTMLButtonElement | null, on: boolean): void {
  if (!button) return;
  button.disabled = on;
  button.setAttribute('aria-busy', String(on));
}

async function register(optionsUrl: string, verifyUrl: string, body: Json): Promise<Json> {
  const { options } = (await postJSON(optionsUrl, body)) as { options: Parameters<typeof startRegistration>[0]['optionsJSON'] };
  setStatus('Follow the instructions from your browser or device.');
  const response = await startRegistration({ optionsJSON: options });
  setStatus('Checking your passkey…');
  return postJSON(verifyUrl, { ...body, response: response as unknown as Json });
}

async function authenticate(optionsUrl: string, verifyUrl: string, body: Json, autofill = false): Promise<Json> {
  const { options } = (await postJSON(optionsUrl, body)) as { options: Parameters<typeof startAuthentication>[0]['optionsJSON'] };
  if (!autofill) setStatus('Follow the instructions from your browser or device.');
  const response = await startAuthentication({ optionsJSON: options, useBrowserAutofill: autofill });
  setStatus('Checking your passkey…');
  try {
    return await postJSON(verifyUrl, { ...body, response: response as unknown as Json });
  } catch (err) {
    // A passkey we no longer know (removed elsewhere): tell the provider so the device stops offering it.
    if (err instanceof ApiError && err.code === 'credential_unknown' && options.rpId) void signalUnknown(options.rpId, response.id);
    throw err;
  }
}

async function signalUnknown(rpId: string, credentialId: string): Promise<void> {
  const PKC = window.PublicKeyCredential as unknown as { signalUnknownCredential?: (o: { rpId: string; credentialId: string }) => Promise<void> };
  if (typeof PKC?.signalUnknownCredential !== 'function') return;
  try {
    await PKC.signalUnknownCredential({ rpId, credentialId });
    document.body.dataset.signalUnknownSent = 'true';
  } catch {
    // Nothing to tell the person: the sign-in error is already shown.
  }
}

function go(result: Json, fallback: string): void {
  // The page a signed-out visitor was sent from (/signin?next=…), checked by the server before it reached data-next.
  const next = document.body.dataset.page === 'signin' ? document.body.dataset.next : undefined;
  window.location.assign(next || (typeof result.redirect === 'string' ? result.redirect : fallback));
}

function unsupported(): boolean {
  if (browserSupportsWebAuthn()) return false;
  showError('This browser cannot use passkeys. Update your browser, or use another device.');
  return true;
}

// --- Sign in: autofill (conditional mediation), "Sign in with a passkey", and email first.
function signInPage(): void {
  const emailForm = document.getElementById('email-form') as HTMLFormElement | null;
  const passkeyButton = document.getElementById('passkey-signin') as HTMLButtonElement | null;

  // Autofill stays offered while the page is open: a request that ran out its time (the challenge lasts
  // 5 minutes) or whose challenge had expired is replaced by a fresh one. One that fails at once is not
  // retried: that browser can't offer autofill now.
  let autofillRestarts = 0;
  const startAutofill = async (): Promise<void> => {
    if (!(await browserSupportsWebAuthnAutofill())) return;
    const started = Date.now();
    try {
      const result = await authenticate('/signin/options', '/signin/verify', { mode: 'autofill' }, true);
      go(result, '/settings');
    } catch (err) {
      const name = (err as { name?: string })?.name;
      // Aborted because another ceremony started: that one restarts autofill when it ends.
      if (name === 'AbortError' || (err as { code?: string })?.code === 'ERROR_CEREMONY_ABORTED') return;
      if (err instanceof ApiError || name !== 'NotAllowedError') showError(explain(err, 'signin'));
      const expired = err instanceof ApiError && err.code === 'challenge_invalid';
      if ((expired || Date.now() - started > 60_000) && autofillRestarts++ < 20) void startAutofill();
    }
  };

  passkeyButton?.addEventListener('click', async () => {
    if (unsupported()) return;
    clearError();
    busy(passkeyButton, true);
    try {
      WebAuthnAbortService.cancelCeremony();
      const result = await authenticate('/signin/options', '/signin/verify', { mode: 'discoverable' });
      go(result, '/settings');
    } catch (err) {
      showError(explain(err, 'signin'));
      void startAutofill();
    } finally {
      busy(passkeyButton, false);
    }
  });

  emailForm?.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (unsupported()) return;
    clearError();
    const problems = checkFields(emailForm);
    if (problems.length) return showError('', problems);
    const { email } = formValues(emailForm);
    const button = emailForm.querySelector('button');
    busy(button, true);
    try {
      WebAuthnAbortService.cancelCeremony();
      const result = await authenticate('/signin/options', '/signin/verify', { mode: 'email', email: email ?? '' });
      go(result, '/settings');
    } catch (err) {
      showError(explain(err, 'signin'), err instanceof ApiError ? err.fields : []);
      void startAutofill();
    } finally {
      busy(button, false);
    }
  });

  void startAutofill();
}

// --- Sign up, invite (enrolment) and "add a passkey" all create a passkey from a form.
function registrationForm(formId: string, optionsUrl: string, verifyUrl: string, fallback: string, reauth = false): void {
  const form = document.getElementById(formId) as HTMLFormElement | null;
  form?.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (unsupported()) return;
    clearError();
    const problems = checkFields(form);
    if (problems.length) return showError('', problems);
    const button = form.querySelector('button[type="submit"]') as HTMLButtonElement | null;
    busy(button, true);
    const values = formValues(form);
    // Which ceremony a browser error came from: the step-up check is a "get", not a "create".
    let ceremony: Ceremony = 'create';
    try {
      let result: Json;
      try {
        result = await register(optionsUrl, verifyUrl, values);
      } catch (err) {
        if (!(reauth && err instanceof ApiError && err.code === 'reauth_required')) throw err;
        setStatus('First, confirm it is you with one of your passkeys.');
        ceremony = 'check';
        await authenticate('/reauth/options', '/reauth/verify', {});
        ceremony = 'create';
        result = await register(optionsUrl, verifyUrl, values);
      }
      go(result, fallback);
    } catch (err) {
      showError(explain(err, ceremony), err instanceof ApiError ? err.fields : []);
    } finally {
      busy(button, false);
    }
  });
}

// --- "Set up a passkey" after a sign-in without one: first let the password manager save one without a dialog.

/** How long the browser gets to save a passkey by itself before the page asks instead. */
const CONDITIONAL_CREATE_WAIT_MS = 3000;

function passkeyUpgradePage(): void {
  const form = document.getElementById('passkey-upgrade-form') as HTMLFormElement | null;
  const choice = document.getElementById('passkey-upgrade-choice');
  const next = document.body.dataset.next || '/settings';
  const finish = (result: Json) => window.location.assign(typeof result.redirect === 'string' ? result.redirect : next);
  const ask = (): void => {
    if (choice) choice.hidden = false;
    setStatus('');
    document.body.dataset.upgrade = 'interstitial';
  };

  form?.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (unsupported()) return;
    clearError();
    const button = form.querySelector('button[type="submit"]') as HTMLButtonElement | null;
    busy(button, true);
    try {
      WebAuthnAbortService.cancelCeremony();
      finish(await register('/passkey-upgrade/options', '/passkey-upgrade/verify', { ...formValues(form), next }));
    } catch (err) {
      showError(explain(err, 'create'), err instanceof ApiError ? err.fields : []);
    } finally {
      busy(button, false);
    }
  });

  // WebAuthn L3 §5.1.3: ask for a conditional create only where getClientCapabilities() reports it, so a browser
  // without it shows no error. While it is tried the choice waits out of sight; "Not now" stays.
  const PKC = window.PublicKeyCredential as unknown as { getClientCapabilities?: () => Promise<Record<string, boolean>> } | undefined;
  if (typeof PKC?.getClientCapabilities !== 'function') return ask();
  if (choice) choice.hidden = true;
  void (async () => {
    let timer: number | undefined;
    try {
      if ((await PKC.getClientCapabilities!())?.conditionalCreate !== true) return ask();
      document.body.dataset.upgrade = 'conditional';
      const { options } = (await postJSON('/passkey-upgrade/options', { conditional: true, next })) as { options: Parameters<typeof startRegistration>[0]['optionsJSON'] };
      // A password manager that will save a passkey does so at once; one that won't may never answer.
      timer = window.setTimeout(() => WebAuthnAbortService.cancelCeremony(), CONDITIONAL_CREATE_WAIT_MS);
      const response = await startRegistration({ optionsJSON: options, useAutoRegister: true });
      window.clearTimeout(timer);
      setStatus('Saving your passkey…');
      const result = await postJSON('/passkey-upgrade/verify', { response: response as unknown as Json, next });
      document.body.dataset.upgrade = 'saved';
      finish(result);
    } catch (err) {
      window.clearTimeout(timer);
      // The browser declining is not a problem to report; the server refusing is.
      if (err instanceof ApiError) showError(err.message);
      ask();
    }
  })();
}

// --- A standalone "confirm it's you" page (before removing a passkey).
function reauthPage(): void {
  const button = document.getElementById('reauth-button') as HTMLButtonElement | null;
  button?.addEventListener('click', async () => {
    if (unsupported()) return;
    clearError();
    busy(button, true);
    try {
      // A service that needs AAL3 (data-need="3"): the options offer only the security keys that give it.
      const need = document.body.dataset.need;
      await authenticate('/reauth/options', '/reauth/verify', need ? { need } : {});
      window.location.assign(document.body.dataset.next || '/settings');
    } catch (err) {
      showError(explain(err, 'check'));
    } finally {
      busy(button, false);
    }
  });
}

// --- WebAuthn Signals API: tell the passkey provider which passkeys still exist, so removed ones disappear.
async function sendSignals(): Promise<void> {
  const data = document.body.dataset;
  if (!data.signalUserId || !data.signalRpId) return;
  const PKC = window.PublicKeyCredential as unknown as {
    signalAllAcceptedCredentials?: (o: { rpId: string; userId: string; allAcceptedCredentialIds: string[] }) => Promise<void>;
    signalCurrentUserDetails?: (o: { rpId: string; userId: string; name: string; displayName: string }) => Promise<void>;
  };
  const fallback = document.getElementById('signal-fallback');
  if (!PKC || typeof PKC.signalAllAcceptedCredentials !== 'function') {
    if (fallback) fallback.hidden = false;
    return;
  }
  try {
    await PKC.signalAllAcceptedCredentials({
      rpId: data.signalRpId,
      userId: data.signalUserId,
      allAcceptedCredentialIds: (data.signalCredentials ?? '').split(',').filter(Boolean),
    });
    if (typeof PKC.signalCurrentUserDetails === 'function') {
      await PKC.signalCurrentUserDetails({ rpId: data.signalRpId, userId: data.signalUserId, name: data.signalName ?? '', displayName: data.signalDisplayName ?? '' });
    }
    document.body.dataset.signalSent = 'true';
  } catch {
    if (fallback) fallback.hidden = false;
  }
}

// --- Registration-authority console: live status of issued links and codes, copy, and the code's countdown.
const statusLabels: Record<string, string> = { pending: 'Pending', enrolled: 'Enrolled', expired: 'Expired', revoked: 'Revoked' };

function announce(message: string): void {
  const announcer = document.getElementById('enrolment-announcer');
  if (announcer) announcer.textContent = message;
}

function watchEnrolments(): void {
  const badges = Array.from(document.querySelectorAll<HTMLElement>('[data-status-url]'));
  if (!badges.length) return;
  const poll = async (): Promise<void> => {
    let pending = 0;
    for (const badge of badges) {
      if (badge.dataset.enrolmentStatus !== 'pending') continue;
      try {
        const res = await fetch(badge.dataset.statusUrl!, { headers: { accept: 'application/json' }, credentials: 'same-origin' });
        if (res.ok) {
          const { status, redeemed } = (await res.json()) as { status: string; redeemed?: boolean };
          if (redeemed && badge.dataset.redeemed !== 'true') {
            badge.dataset.redeemed = 'true';
            if (status === 'pending') announce('The code has been entered');
          }
          if (status !== badge.dataset.enrolmentStatus) {
            badge.dataset.enrolmentStatus = status;
            badge.className = `badge enrolment-${status}`;
            badge.textContent = statusLabels[status] ?? status;
            announce(`Status: ${statusLabels[status] ?? status}`);
            if (status !== 'pending') badge.closest('tr')?.querySelector('[data-revoke-form]')?.remove();
            if (status !== 'pending' && document.body.dataset.page === 'admin-issued') document.querySelector('[data-revoke-form]')?.remove();
          }
        }
      } catch {
        // Offline for a moment: the next poll tries again.
      }
      if (badge.dataset.enrolmentStatus === 'pending') pending++;
    }
    if (pending) window.setTimeout(() => void poll(), 2000);
  };
  window.setTimeout(() => void poll(), 1000);
}

function copyButtons(): void {
  for (const button of Array.from(document.querySelectorAll<HTMLButtonElement>('[data-copy-button]'))) {
    const source = document.getElementById(button.dataset.copyButton!) as HTMLInputElement | null;
    if (!source) continue;
    button.hidden = false;
    button.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(source.value);
      } catch {
        source.select();
        document.execCommand('copy');
      }
      const copied = button.dataset.copiedText ?? 'Link copied';
      button.textContent = copied;
      announce(copied);
    });
  }
}

function codeCountdown(): void {
  const countdown = document.querySelector<HTMLElement>('[data-countdown]');
  const data = document.body.dataset;
  if (!countdown || !data.expiresAt || !data.serverNow) return;
  // Count from the server's clock, not this device's: they can disagree by minutes.
  const deadline = Date.now() + (Number(data.expiresAt) - Number(data.serverNow));
  let expiredShown = false;
  const tick = (): void => {
    // A code that was used or revoked no longer runs out: saying "expired, generate a new one" then would mislead the agent.
    // Nor does one the person has entered: their passkey set-up has its own time, and a new code would cancel it.
    const badge = document.querySelector<HTMLElement>('[data-enrolment-status]');
    const settled = badge?.dataset.enrolmentStatus;
    const entered = badge?.dataset.redeemed === 'true' && settled === 'pending';
    if (settled === 'enrolled' || settled === 'revoked' || entered) {
      document.getElementById('enrolment-code')?.classList.remove('expired');
      countdown.textContent =
        settled === 'enrolled' ? 'The code has been used.' : settled === 'revoked' ? 'The code has been revoked.' : 'The code has been entered: the person is setting up their passkey.';
      if (entered) window.setTimeout(tick, 1000);
      return;
    }
    const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
    countdown.textContent = left > 0 ? `Expires in ${left} second${left === 1 ? '' : 's'}` : 'This code has expired. Generate a new one if the person needs it.';
    if (left === 30 || left === 10) announce(`The code expires in ${left} seconds`);
    if (left === 0) {
      if (!expiredShown) {
        expiredShown = true;
        announce('The code has expired');
        document.getElementById('enrolment-code')?.classList.add('expired');
      }
      // Until the server says so too: a code entered in its last seconds shows as entered at the next status poll.
      if (settled === 'pending') window.setTimeout(tick, 1000);
      return;
    }
    window.setTimeout(tick, (deadline - Date.now()) % 1000 || 1000);
  };
  tick();
}

// --- Self-service details: the ALTCHA proof of work, solved by the browser itself (no third party, nothing to click).
function captchaField(): void {
  const input = document.querySelector<HTMLInputElement>('input[data-captcha-url]');
  const status = document.querySelector<HTMLElement>('[data-captcha-status]');
  if (!input || !status) return;
  const solve = async (): Promise<void> => {
    status.textContent = 'Checking you are a person…';
    try {
      const res = await fetch(input.dataset.captchaUrl!, { headers: { accept: 'application/json' }, credentials: 'same-origin' });
      const c = (await res.json()) as { algorithm: string; challenge: string; salt: string; signature: string; maxnumber?: number };
      const solution = await solveChallenge(c.challenge, c.salt, c.algorithm, c.maxnumber).promise;
      if (!solution) throw new Error('unsolved');
      input.value = btoa(JSON.stringify({ algorithm: c.algorithm, challenge: c.challenge, number: solution.number, salt: c.salt, signature: c.signature }));
      status.textContent = 'Done: you can continue.';
      document.body.dataset.captchaSolved = 'true';
    } catch {
      status.textContent = 'The check could not finish. Reload the page to try again.';
    }
  };
  void solve();
  // A challenge lasts 10 minutes: a page left open gets a fresh one.
  window.setInterval(() => void solve(), 9 * 60_000);
}

function main(): void {
  const page = document.body.dataset.page;
  switch (page) {
    case 'signin':
      signInPage();
      break;
    case 'signup':
      registrationForm('signup-form', '/signup/options', '/signup/verify', '/settings');
      break;
    case 'enrol': {
      const base = window.location.pathname;
      registrationForm('enrol-form', `${base}/options`, `${base}/verify`, '/settings');
      break;
    }
    case 'settings':
      registrationForm('add-passkey-form', '/settings/passkeys/options', '/settings/passkeys/verify', '/settings', true);
      void sendSignals();
      break;
    case 'reauth':
      reauthPage();
      break;
    case 'passkey-upgrade':
      passkeyUpgradePage();
      break;
    case 'self-service-details':
      captchaField();
      break;
    case 'self-service-passkey': {
      const base = window.location.pathname;
      registrationForm('self-service-passkey-form', `${base}/options`, `${base}/verify`, '/signin');
      break;
    }
    case 'admin-issued':
      copyButtons();
      codeCountdown();
      watchEnrolments();
      break;
    case 'admin-profile':
      watchEnrolments();
      break;
    case 'admin-api-token':
      copyButtons();
      break;
    case 'continue': {
      // Back to a service after a form: a script navigation, because Chromium applies CSP form-action to every
      // redirect that follows a form post, and the chain ends at the service's origin.
      const link = document.getElementById('continue-link');
      if (link instanceof HTMLAnchorElement) window.location.replace(link.href);
      break;
    }
  }
  const summary = document.getElementById('error-summary');
  if (summary && !summary.hidden) summary.focus();
  document.body.dataset.ready = 'true';
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', main);
else main();
