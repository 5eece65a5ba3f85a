/**
 * Passkey forms are driven by the browser bundle. When it did not run, the form
 * posts to its page, which answers by showing the page again with "Passkeys
 * need JavaScript" in its error summary (`?nojs=1`).
 */
import { Type } from 'typebox';

export const NoScriptQuery = Type.Object({ nojs: Type.Optional(Type.String({ maxLength: 4 })) });

/** Whatever the form held: nothing is kept, so only sizes are checked. */
export const NoScriptForm = Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 2000 }), { maxProperties: 20 });
