/**
 * One spelling per path, before the router sees it: encoded slashes and dots
 * decoded, empty and dot segments removed (RFC 3986 §5.2.4, §6.2.2), trailing
 * dots and slashes dropped. `/admin//users`, `/admin%2Fusers`, `/admin/./users`
 * and `/admin/users.` are all `/admin/users`, so every spelling of a path
 * reaches the same route and gets the same answer, and a route is never
 * reached under a spelling its checks did not expect. Other percent-escapes are
 * left to the router, which decodes them itself. The query is untouched.
 */

/** What makes a path worth rewriting; everything else (nearly every request) is returned as it came. */
const NEEDS_WORK = /%2[ef]|\/\/|\/\.|\.(?=\/|$)|.\/$/i;

export function canonicalRequestUrl(url: string): string {
  // Only origin-form targets ("/path?query"); anything else is the router's to refuse.
  if (!url.startsWith('/')) return url;
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  if (!NEEDS_WORK.test(path)) return url;
  const segments: string[] = [];
  for (const raw of path.replace(/%2f/gi, '/').replace(/%2e/gi, '.').split('/')) {
    if (raw === '..') {
      segments.pop();
      continue;
    }
    const segment = raw.replace(/\.+$/, '');
    if (segment) segments.push(segment);
  }
  return `/${segments.join('/')}${q === -1 ? '' : url.slice(q)}`;
}
