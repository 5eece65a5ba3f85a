/**
 * What the big provisioning clients send that SCIMMY, reading RFC 7643 strictly, would refuse — rewritten to what
 * they mean before SCIMMY sees it. Nothing else is changed: whatever is still wrong, SCIMMY explains.
 *
 * - Entra ID sends booleans as strings ("active": "False", "primary": "True") unless the tenant opted into its
 *   2020 SCIM fixes (Microsoft's "Known issues and resolutions with SCIM 2.0 protocol compliance").
 * - Entra ID writes operation names capitalised ("Replace", "Add"); SCIMMY accepts those, and lower case is the RFC's.
 * - Entra ID sends the enterprise extension's manager as the manager's bare id string, not `{ value: id }`.
 */

const MANAGER_PATH = /^urn:ietf:params:scim:schemas:extension:enterprise:2\.0:User:manager$/i;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** "True" / "False" in any case as the boolean; anything else as it came. */
function booleanOf(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const lower = value.trim().toLowerCase();
  return lower === 'true' ? true : lower === 'false' ? false : value;
}

function normaliseEmails(emails: unknown): unknown {
  if (!Array.isArray(emails)) return emails;
  return emails.map((e) => (isObject(e) && 'primary' in e ? { ...e, primary: booleanOf(e.primary) } : e));
}

/** A SCIM User body (POST, PUT, or a patch's value without a path). */
export function normaliseScimUser(body: unknown): unknown {
  if (!isObject(body)) return body;
  const out: Record<string, unknown> = { ...body };
  for (const key of Object.keys(out)) {
    const lower = key.toLowerCase();
    if (lower === 'active') out[key] = booleanOf(out[key]);
    else if (lower === 'emails') out[key] = normaliseEmails(out[key]);
    else if (MANAGER_PATH.test(key) && typeof out[key] === 'string') out[key] = { value: out[key] };
  }
  return out;
}

/** A PatchOp body (PATCH /Users/:id). */
export function normalisePatchOp(body: unknown): unknown {
  if (!isObject(body) || !Array.isArray(body.Operations)) return body;
  const operations = body.Operations.map((operation: unknown) => {
    if (!isObject(operation)) return operation;
    const out: Record<string, unknown> = { ...operation };
    if (typeof out.op === 'string') out.op = out.op.toLowerCase();
    const path = typeof out.path === 'string' ? out.path.trim() : undefined;
    if (path === undefined) out.value = normaliseScimUser(out.value);
    else if (/^active$/i.test(path)) out.value = booleanOf(out.value);
    else if (/^emails$/i.test(path)) out.value = normaliseEmails(out.value);
    else if (/\.primary$/i.test(path)) out.value = booleanOf(out.value);
    else if (MANAGER_PATH.test(path) && typeof out.value === 'string') out.value = { value: out.value };
    return out;
  });
  return { ...body, Operations: operations };
}
