/**
 * The authenticator policy in the console (issue 13): an RA Manager decides which passkeys may be registered and
 * what AAL3 needs (src/webauthn/authenticatorPolicy.ts). Saved in the settings table, so every instance and
 * `latchkey doctor` read the same policy, and put in force here at once (Trust.setPolicy); other instances pick it
 * up when they reload.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { audit } from '../../audit.js';
import type { FieldError } from '../../errors.js';
import { html } from '../../http/replies.js';
import { Csrf } from '../../http/schemas.js';
import { renderPage } from '../../views/render.js';
import { CsrfField, ErrorSummary } from '../../views/layout.js';
import { AAGUID_PATTERN, AuthenticatorPolicySchema, type AuthenticatorPolicy } from '../../webauthn/authenticatorPolicy.js';
import { certificationLabel, CERTIFICATION_LEVELS, type CertificationLevel, type MetadataCatalogue } from '../../webauthn/metadata/catalogue.js';
import { compromisedConsequence, compromisedWords } from '../../webauthn/policyInWords.js';
import { POLICY_SETTING } from '../../webauthn/trust.js';
import { isRole, roleLabels, ROLES, type Role } from '../roles.js';
import { AdminLayout, Flash, type AdminContext } from '../views.js';
import { adminContext as ctx, flashFor } from './shared.js';

const MAX_MODELS = (AuthenticatorPolicySchema.properties.allowedModels as { maxItems?: number }).maxItems ?? 500;
const AAGUID = new RegExp(AAGUID_PATTERN);

const PolicyQuery = Type.Object({ done: Type.Optional(Type.String({ maxLength: 32 })) });
// Every field is a string as the form sends it: a value outside the choices is a message at its field, not a bare 400.
const PolicyBody = Type.Object({
  ...Csrf,
  allowedModels: Type.Optional(Type.String({ maxLength: 40_000 })),
  deniedModels: Type.Optional(Type.String({ maxLength: 40_000 })),
  minimumCertification: Type.Optional(Type.String({ maxLength: 64 })),
  syncedPasskeys: Type.Optional(Type.String({ maxLength: 64 })),
  deviceBoundRoles: Type.Optional(Type.Union([Type.String({ maxLength: 64 }), Type.Array(Type.String({ maxLength: 64 }), { maxItems: 8 })])),
  aal3MinimumCertification: Type.Optional(Type.String({ maxLength: 64 })),
  compromised: Type.Optional(Type.String({ maxLength: 64 })),
});

/** The form as typed: what is shown again when something is wrong. */
export interface PolicyFormValues {
  allowedModels: string;
  deniedModels: string;
  minimumCertification: string;
  syncedPasskeys: string;
  deviceBoundRoles: string[];
  aal3MinimumCertification: string;
  compromised: string;
}

function formValuesOf(policy: AuthenticatorPolicy): PolicyFormValues {
  return {
    allowedModels: policy.allowedModels.join('\n'),
    deniedModels: policy.deniedModels.join('\n'),
    minimumCertification: policy.minimumCertification ?? '',
    syncedPasskeys: policy.syncedPasskeys,
    deviceBoundRoles: [...policy.deviceBoundRoles],
    aal3MinimumCertification: policy.aal3MinimumCertification ?? '',
    compromised: policy.compromised,
  };
}

function formValuesFrom(body: Static<typeof PolicyBody>): PolicyFormValues {
  const roles = body.deviceBoundRoles === undefined ? [] : Array.isArray(body.deviceBoundRoles) ? body.deviceBoundRoles : [body.deviceBoundRoles];
  return {
    allowedModels: body.allowedModels ?? '',
    deniedModels: body.deniedModels ?? '',
    minimumCertification: body.minimumCertification ?? '',
    syncedPasskeys: body.syncedPasskeys ?? '',
    deviceBoundRoles: roles,
    aal3MinimumCertification: body.aal3MinimumCertification ?? '',
    compromised: body.compromised ?? '',
  };
}

const listNames = { allowedModels: 'allowed models', deniedModels: 'denied models' } as const;

/** The AAGUIDs of one textarea, one per line (blank lines skipped, repeats kept once), and a message per bad line. */
function readModels(field: keyof typeof listNames, text: string, errors: FieldError[]): string[] {
  const aaguids: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim().toLowerCase();
    if (!line) return;
    if (!AAGUID.test(line)) {
      const shown = raw.trim().length > 60 ? `${raw.trim().slice(0, 60)}…` : raw.trim();
      errors.push({ field, message: `Line ${i + 1} of ${listNames[field]}, “${shown}”, is not an AAGUID: enter one like 2fc0579f-8113-47ea-b116-bb5a8db9202a` });
    } else if (!aaguids.includes(line)) aaguids.push(line);
  });
  if (aaguids.length > MAX_MODELS) errors.push({ field, message: `Enter at most ${MAX_MODELS} ${listNames[field]}` });
  return aaguids;
}

const isLevel = (v: string): v is CertificationLevel => (CERTIFICATION_LEVELS as readonly string[]).includes(v);

/** The policy the form describes, or the messages that say what to correct. */
export function readPolicyForm(values: PolicyFormValues): { policy: AuthenticatorPolicy; errors: [] } | { policy?: undefined; errors: FieldError[] } {
  const errors: FieldError[] = [];
  const allowedModels = readModels('allowedModels', values.allowedModels, errors);
  const deniedModels = readModels('deniedModels', values.deniedModels, errors);
  for (const aaguid of deniedModels.filter((a) => allowedModels.includes(a))) {
    errors.push({ field: 'deniedModels', message: `${aaguid} is in both allowed and denied models: remove it from one of them` });
  }
  if (values.minimumCertification && !isLevel(values.minimumCertification)) errors.push({ field: 'minimumCertification', message: 'Select a certification level from the list' });
  if (values.syncedPasskeys !== 'allowed' && values.syncedPasskeys !== 'not-allowed') errors.push({ field: 'syncedPasskeys-allowed', message: 'Select whether synced passkeys are allowed' });
  if (values.deviceBoundRoles.some((r) => !isRole(r))) errors.push({ field: `deviceBoundRoles-${ROLES[0]}`, message: 'Select roles from the list' });
  if (values.aal3MinimumCertification && !isLevel(values.aal3MinimumCertification)) errors.push({ field: 'aal3MinimumCertification', message: 'Select a certification level from the list' });
  if (values.compromised !== 'no-aal3' && values.compromised !== 'refuse') errors.push({ field: 'compromised-no-aal3', message: 'Select what a model with a reported security problem loses' });
  if (errors.length) return { errors };
  const level = (v: string): CertificationLevel | null => (isLevel(v) ? v : null);
  return {
    errors: [],
    policy: {
      allowedModels,
      deniedModels,
      minimumCertification: level(values.minimumCertification),
      syncedPasskeys: values.syncedPasskeys as AuthenticatorPolicy['syncedPasskeys'],
      deviceBoundRoles: ROLES.filter((r) => values.deviceBoundRoles.includes(r)),
      aal3MinimumCertification: level(values.aal3MinimumCertification),
      compromised: values.compromised as AuthenticatorPolicy['compromised'],
    },
  };
}

/** What changed, for the audit log: lists as added and removed, everything else as before and after. */
export function policyChanges(before: AuthenticatorPolicy, after: AuthenticatorPolicy): Record<string, unknown> {
  const changes: Record<string, unknown> = {};
  for (const key of Object.keys(after) as (keyof AuthenticatorPolicy)[]) {
    const b = before[key];
    const a = after[key];
    if (Array.isArray(a) && Array.isArray(b)) {
      const added = a.filter((x) => !(b as string[]).includes(x));
      const removed = (b as string[]).filter((x) => !(a as string[]).includes(x));
      if (added.length || removed.length) changes[key] = { added, removed };
    } else if (a !== b) changes[key] = { before: b, after: a };
  }
  return changes;
}

export async function consolePolicyRoutes(app: FastifyInstance) {
  const { store, trust } = app.latchkey;
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const permission = 'policy.manage';

  r.get('/admin/policy', { config: { permission }, schema: { querystring: PolicyQuery } }, async (request, reply) => {
    const page = <PolicyPage {...ctx(request)} values={formValuesOf(trust.policy())} errors={[]} catalogue={trust.metadata()} flash={flashFor(request.query.done)} />;
    return html(reply, renderPage(page));
  });

  r.post('/admin/policy', { config: { permission }, schema: { body: PolicyBody } }, async (request, reply) => {
    const values = formValuesFrom(request.body);
    const read = readPolicyForm(values);
    const errors: FieldError[] = read.errors;
    // Naming models or a certification needs the metadata to confirm them: without it every new passkey is refused.
    if (read.policy && trust.metadata().size === 0) {
      const unconfirmable = 'Load the FIDO metadata first (latchkey metadata import FILE): without it no key’s make and model can be confirmed, so every new passkey would be refused';
      if (read.policy.allowedModels.length) errors.push({ field: 'allowedModels', message: unconfirmable });
      if (read.policy.minimumCertification) errors.push({ field: 'minimumCertification', message: unconfirmable });
    }
    const policy = errors.length ? undefined : read.policy;
    if (!policy) return html(reply, renderPage(<PolicyPage {...ctx(request)} values={values} errors={errors} catalogue={trust.metadata()} />), 400);
    // Compared with what the database holds, not this instance's copy: another instance may have changed it since.
    await trust.reload(store);
    const changes = policyChanges(trust.policy(), policy);
    if (!Object.keys(changes).length) return reply.redirect('/admin/policy?done=policy-unchanged', 303);
    await store.transaction(async (tx) => {
      await tx.settings.set(POLICY_SETTING, JSON.stringify(policy));
      await audit(app, request, { event: 'policy.changed', detail: { changes } }, tx);
    });
    trust.setPolicy(policy);
    return reply.redirect('/admin/policy?done=policy-saved', 303);
  });
}

// ------------------------------------------------------------------ the page

const certificationChoices: [string, string][] = [['', 'No minimum'], ...CERTIFICATION_LEVELS.map((l): [string, string] => [l, certificationLabel(l)])];

function FieldMessages(props: { id: string; errors: FieldError[] }) {
  if (!props.errors.length) return null;
  return (
    <div class="error-message" id={`${props.id}-error`}>
      {props.errors.map((e) => (
        <p>
          <span class="visually-hidden">Error: </span>
          {e.message}
        </p>
      ))}
    </div>
  );
}

function ModelsField(props: { id: 'allowedModels' | 'deniedModels'; label: string; hint: string; value: string; errors: FieldError[] }) {
  const errors = props.errors.filter((e) => e.field === props.id);
  return (
    <div class={`field${errors.length ? ' field-error' : ''}`}>
      <label for={props.id}>
        {props.label}
        <span class="hint" id={`${props.id}-hint`}>
          {props.hint}
        </span>
      </label>
      <FieldMessages id={props.id} errors={errors} />
      <textarea
        id={props.id}
        name={props.id}
        rows={5}
        spellcheck={false}
        autoComplete="off"
        class="aaguids"
        aria-describedby={`${props.id}-hint${errors.length ? ` ${props.id}-error` : ''}`}
        aria-invalid={errors.length ? 'true' : undefined}
      >
        {props.value}
      </textarea>
    </div>
  );
}

function CertificationSelect(props: { id: string; label: string; hint: string; value: string; errors: FieldError[] }) {
  const errors = props.errors.filter((e) => e.field === props.id);
  return (
    <div class={`field${errors.length ? ' field-error' : ''}`}>
      <label for={props.id}>
        {props.label}
        <span class="hint">{props.hint}</span>
      </label>
      <FieldMessages id={props.id} errors={errors} />
      <select id={props.id} name={props.id} aria-invalid={errors.length ? 'true' : undefined}>
        {certificationChoices.map(([value, label]) => (
          <option value={value} selected={props.value === value}>
            {label}
          </option>
        ))}
      </select>
    </div>
  );
}

function Radios(props: { name: string; legend: string; hint: string; value: string; choices: [string, string, string?][]; errors: FieldError[] }) {
  const first = `${props.name}-${props.choices[0]![0]}`;
  const errors = props.errors.filter((e) => e.field === first);
  return (
    <fieldset class={`radios${errors.length ? ' field-error' : ''}`} aria-describedby={`${props.name}-hint`}>
      <legend>{props.legend}</legend>
      <p class="hint" id={`${props.name}-hint`}>
        {props.hint}
      </p>
      <FieldMessages id={first} errors={errors} />
      {props.choices.map(([value, label, hint]) => (
        <div class="radio">
          <input type="radio" id={`${props.name}-${value}`} name={props.name} value={value} checked={props.value === value} />
          <label for={`${props.name}-${value}`}>
            {label}
            {hint ? <span class="hint">{hint}</span> : null}
          </label>
        </div>
      ))}
    </fieldset>
  );
}

/** The models the loaded metadata knows, to copy AAGUIDs from; how to load it when none is. */
function KnownModels(props: { catalogue: MetadataCatalogue }) {
  const entries = props.catalogue.all().sort((a, b) => a.description.localeCompare(b.description));
  if (!entries.length) {
    return (
      <p class="notice" data-no-metadata>
        No FIDO metadata is loaded, so Latchkey can’t name models, confirm a key’s make and model, or give AAL3. Download the metadata BLOB from the FIDO Alliance
        (https://mds3.fidoalliance.org/) and load it on the server with <code>latchkey metadata import FILE</code>.
      </p>
    );
  }
  return (
    <details data-known-models>
      <summary>Models in the FIDO metadata ({entries.length}), to copy their AAGUIDs</summary>
      <table aria-label="Models in the FIDO metadata">
        <thead>
          <tr>
            <th scope="col">Model</th>
            <th scope="col">AAGUID</th>
            <th scope="col">Certification</th>
          </tr>
        </thead>
        <tbody>
          {entries.map((e) => (
            <tr data-aaguid={e.aaguid}>
              <td data-label="Model">
                {e.description}
                {e.compromised ? <span class="hint">Security problem reported: {compromisedWords(e.compromised)}</span> : null}
              </td>
              <td data-label="AAGUID">
                <code>{e.aaguid}</code>
              </td>
              <td data-label="Certification">{certificationLabel(e.certification)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </details>
  );
}

export function PolicyPage(m: AdminContext & { values: PolicyFormValues; errors: FieldError[]; catalogue: MetadataCatalogue; flash?: string | null }) {
  const v = m.values;
  const roleErrors = m.errors.filter((e) => e.field === `deviceBoundRoles-${ROLES[0]}`);
  return (
    <AdminLayout {...m} title={m.errors.length ? 'Error: Authenticator policy' : 'Authenticator policy'}>
      <h1>Authenticator policy</h1>
      <Flash message={m.flash} />
      <ErrorSummary fields={m.errors} />
      <p>
        Which passkeys and security keys people can register, and what a key needs to give the highest level of sign-in (AAL3). Changes apply to keys registered from
        now on; a key already registered keeps working, but its level follows the policy at its next sign-in.
      </p>
      <form method="post" action="/admin/policy" novalidate>
        <CsrfField token={m.csrfToken} />
        <h2>Models</h2>
        <p>
          A model is named by its AAGUID, which is the same for every key of that model. Naming models, or asking for a certification, means only keys whose make
          and model are confirmed when they are set up can be registered: most synced passkeys are then refused.
        </p>
        <ModelsField
          id="allowedModels"
          label="Allowed models"
          hint="One AAGUID per line. Leave empty to allow any model. When you list models, only those can be registered."
          value={v.allowedModels}
          errors={m.errors}
        />
        <ModelsField id="deniedModels" label="Denied models" hint="One AAGUID per line. These models can never be registered." value={v.deniedModels} errors={m.errors} />
        <KnownModels catalogue={m.catalogue} />
        <CertificationSelect
          id="minimumCertification"
          label="Minimum certification for every new passkey"
          hint="The FIDO Alliance certifies models at levels 1 to 3: higher levels resist more determined attacks. No minimum lets people use any passkey."
          value={v.minimumCertification}
          errors={m.errors}
        />
        <h2>Synced passkeys</h2>
        <Radios
          name="syncedPasskeys"
          legend="Can people register synced passkeys?"
          hint="A synced passkey is copied to the person’s other devices by Apple, Google or a password manager. Security keys and some phones keep the passkey on one device."
          value={v.syncedPasskeys}
          choices={[
            ['allowed', 'Yes, synced passkeys are allowed'],
            ['not-allowed', 'No, every passkey must stay on one device'],
          ]}
          errors={m.errors}
        />
        <fieldset class={`checkboxes${roleErrors.length ? ' field-error' : ''}`} aria-describedby="deviceBoundRoles-hint">
          <legend>Console roles that must use passkeys that stay on one device</legend>
          <p class="hint" id="deviceBoundRoles-hint">
            People holding these roles can’t register synced passkeys, even when everyone else can. For example, registration authority agents.
          </p>
          <FieldMessages id={`deviceBoundRoles-${ROLES[0]}`} errors={roleErrors} />
          {ROLES.map((r: Role) => (
            <div class="checkbox">
              <input type="checkbox" id={`deviceBoundRoles-${r}`} name="deviceBoundRoles" value={r} checked={v.deviceBoundRoles.includes(r)} />
              <label for={`deviceBoundRoles-${r}`}>{roleLabels[r]}</label>
            </div>
          ))}
        </fieldset>
        <h2>The highest level of sign-in (AAL3)</h2>
        <p>
          AAL3 always needs a key that stays on one device, checks the person’s PIN, fingerprint or face, and whose make and model were confirmed against the FIDO
          metadata when it was set up, and a model the lists above allow.
        </p>
        <CertificationSelect
          id="aal3MinimumCertification"
          label="Certification a key needs to give AAL3"
          hint="No minimum: any model in the FIDO metadata can give AAL3."
          value={v.aal3MinimumCertification}
          errors={m.errors}
        />
        <Radios
          name="compromised"
          legend="When the FIDO Alliance reports a security problem with a model"
          hint="For example, its certification was revoked or its keys can be copied. The people using it are shown the problem in their settings."
          value={v.compromised}
          choices={[
            ['no-aal3', compromisedConsequence['no-aal3'], 'Its keys still sign in, at a lower level (AAL2).'],
            ['refuse', compromisedConsequence.refuse, 'Its keys stop working at once: make sure the people using them have another way to sign in.'],
          ]}
          errors={m.errors}
        />
        <button type="submit">Save policy</button>
      </form>
    </AdminLayout>
  );
}
