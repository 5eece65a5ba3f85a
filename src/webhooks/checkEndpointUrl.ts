/**
 * The rule for webhook endpoint URLs: https, so deliveries (personal data) travel encrypted; plain http only to this
 * machine (localhost, 127.0.0.1, [::1]) and only while Latchkey itself runs on http (development and tests). No
 * user name or password in the URL: they would show in the console and the logs.
 */
import type { Config } from '../config/index.js';

export const ENDPOINT_URL_MAX = 2000;
const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/** The URL as it will be stored, or the message that says what is wrong and what the rule is. */
export function checkEndpointUrl(raw: string, config: Pick<Config, 'origin'>): { url: string } | { error: string } {
  const value = raw.trim();
  const devHttp = config.origin.startsWith('http:');
  const rule = devHttp
    ? 'Enter an https:// address, such as https://hr.example.org/latchkey-events (http:// only to localhost or 127.0.0.1 while Latchkey runs on http)'
    : 'Enter an https:// address, such as https://hr.example.org/latchkey-events';
  if (!value) return { error: 'Enter the address Latchkey should send events to' };
  if (value.length > ENDPOINT_URL_MAX) return { error: `The address must be ${ENDPOINT_URL_MAX} characters or fewer` };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { error: rule };
  }
  if (url.username || url.password) return { error: 'Remove the user name and password from the address: Latchkey signs every delivery instead' };
  if (url.hash) return { error: 'Remove the part after # from the address: it is never sent to the receiver' };
  if (url.protocol === 'https:' && url.hostname) return { url: url.href };
  if (url.protocol === 'http:' && devHttp && LOOPBACK.has(url.hostname)) return { url: url.href };
  return { error: rule };
}
