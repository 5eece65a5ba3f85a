/**
 * SCIMMY, set up once per process: the service provider's configuration, the User resource type with its schema
 * extensions, and handlers that reach Latchkey through the context each call passes (scimUsers.ts). SCIMMY keeps all
 * of this in module-level state, so nothing here may depend on one app: tests and a process may build several, and
 * every handler reads the app and request from its ScimContext.
 */
import SCIMMY from 'scimmy';
import { fromScimmy, ScimError } from './scimErrors.js';
import { deleteScimUser, LATCHKEY_USER_EXTENSION, readScimUser, SCIM_MAX_RESULTS, type ScimContext, type ScimUserIn, writeScimUser } from './scimUsers.js';

export const SCIM_BASE_PATH = '/scim/v2';

/** A failure of Latchkey's own, passed through SCIMMY as a 500 and rethrown by {@link callScimmy} as it was. */
async function guarded<T>(ctx: ScimContext, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    const scim = fromScimmy(error);
    if (scim instanceof ScimError) {
      // SCIMMY wraps anything but its own errors as a 404 (or a TypeError as invalidValue): hand it its own.
      throw new SCIMMY.Types.Error(scim.status, (scim.scimType ?? null) as never, scim.detail);
    }
    ctx.failure = error;
    throw new SCIMMY.Types.Error(500, null as never, 'Latchkey could not complete this request.');
  }
}

/** Run a SCIMMY operation; a failure of Latchkey's own inside it comes out as itself (logged and answered as a 500). */
export async function callScimmy<T>(ctx: ScimContext, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (ctx.failure !== undefined) throw ctx.failure;
    throw fromScimmy(error);
  }
}

/**
 * The latchkey extension: a National Insurance number (or the deployment's configured national identifier) given
 * when the person is provisioned, kept only as its HMAC, as the console keeps it, so it is never returned.
 */
const latchkeyExtension = new SCIMMY.Types.SchemaDefinition('LatchkeyUser', LATCHKEY_USER_EXTENSION, 'What Latchkey takes about a person beyond the core User schema', [
  new SCIMMY.Types.Attribute('string', 'nationalInsuranceNumber', {
    description: 'The person’s National Insurance number (or the national identifier this deployment asks for), kept only as a keyed hash and used when they recover access. Never returned.',
    mutable: 'writeOnly',
    returned: 'never',
  }),
]);

let declared = false;

/** Configure SCIMMY (idempotent): ServiceProviderConfig, the User resource and its extensions, the handlers. */
export function declareScim(): typeof SCIMMY.Resources.User {
  if (declared) return SCIMMY.Resources.User;
  declared = true;
  SCIMMY.Config.set({
    patch: true,
    filter: { supported: true, maxResults: SCIM_MAX_RESULTS },
    bulk: false,
    sort: false,
    etag: false,
    changePassword: false,
    authenticationSchemes: [
      {
        type: 'oauthbearertoken',
        name: 'API token',
        description: 'An API token made by an RA Manager in the console (API tokens) or with `latchkey api-tokens create`, sent as "Authorization: Bearer lk_…". It acts with its role: RA Agent (Advanced) can create, change and suspend users.',
        specUri: 'https://www.rfc-editor.org/rfc/rfc6750',
      },
    ],
  });
  for (const resource of [SCIMMY.Resources.ServiceProviderConfig, SCIMMY.Resources.ResourceType, SCIMMY.Resources.Schema]) resource.basepath(SCIM_BASE_PATH);
  // Entra ID's default attribute mappings send the enterprise extension (employeeNumber, department, manager):
  // accepted so its requests succeed, though Latchkey keeps none of it.
  SCIMMY.Resources.declare(SCIMMY.Resources.User, {
    basepath: SCIM_BASE_PATH,
    extensions: [
      { schema: SCIMMY.Schemas.EnterpriseUser, required: false },
      { schema: latchkeyExtension, required: false },
    ],
  } as never);
  SCIMMY.Resources.User.ingress((resource, instance, ctx: ScimContext) => guarded(ctx, () => writeScimUser(ctx, resource.id, instance as unknown as ScimUserIn)) as never)
    .egress((resource, ctx: ScimContext) => guarded(ctx, () => readScimUser(ctx, resource.id!)) as never)
    .degress((resource, ctx: ScimContext) => guarded(ctx, () => deleteScimUser(ctx, resource.id!)));
  return SCIMMY.Resources.User;
}
