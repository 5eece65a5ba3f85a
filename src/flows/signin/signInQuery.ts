/**
 * The query string that carries a sign-in's context between its pages (/signin, /signin/password, /signin/help,
 * /signin/linked/…): where the person was going (`next`, a waiting service) and the email address they gave or a
 * service hinted (`email`). Empty when there is neither.
 */
export function signInQuery(params: { next?: string | undefined; email?: string | undefined }): string {
  const q = new URLSearchParams();
  if (params.next) q.set('next', params.next);
  if (params.email) q.set('email', params.email);
  return q.size ? `?${q}` : '';
}
