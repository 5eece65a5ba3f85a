import type { Config } from '../../config/index.js';
import type { User } from '../../db/schema.js';
import { ErrorSummary, Layout, NoScript, StatusRegion } from '../../views/layout.js';

export function ReauthPage(props: { config: Config; csrfToken: string; user: User; next: string }) {
  return (
    <Layout title="Confirm it is you" rpName={props.config.rpName} csrfToken={props.csrfToken} page="reauth" signedIn={{ displayName: props.user.display_name }} data={{ next: props.next }}>
      <h1>Confirm it is you</h1>
      <ErrorSummary />
      <StatusRegion />
      <NoScript />
      <p>For your security, use one of your passkeys before you change your passkeys.</p>
      <div class="actions">
        <button type="button" id="reauth-button">
          Continue with a passkey
        </button>
        <a class="button secondary" href="/settings">
          Cancel
        </a>
      </div>
    </Layout>
  );
}
