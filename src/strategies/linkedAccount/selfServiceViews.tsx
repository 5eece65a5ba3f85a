/** The self-service page before going to a work account's provider (src/strategies/linkedAccount/selfServiceRoutes.tsx). */
import type { FieldError } from '../../errors.js';
import { ConfirmOnlyYouPage, type Base } from '../../flows/selfService/views.js';

export function LinkedConfirmPage(m: Base & { flowId: string; providerId: string; providerName: string; errors: FieldError[] }) {
  return (
    <ConfirmOnlyYouPage
      {...m}
      title={`Register your ${m.providerName} account`}
      action={`/add-authenticator/${m.flowId}/linked/${m.providerId}`}
      confirmLabel={`I confirm only I have access to this ${m.providerName} account`}
    >
      <p>
        You will go to the {m.providerName} sign-in page. Sign in with your {m.providerName} email address and password; you then come back here.
      </p>
    </ConfirmOnlyYouPage>
  );
}
