/** Checks on server-rendered pages, for HTTP tests that read the HTML. */
import { expect } from 'vitest';

const occurrences = (haystack: string, needle: string) => haystack.split(needle).length - 1;

/**
 * The GOV.UK error pattern for a tick box left empty: the error summary links to the box, the message sits at the
 * box (and the box points to it), and the message is said exactly those two times.
 */
export function expectConfirmError(html: string, message: string): void {
  expect(occurrences(html, `<a href="#confirm">${message}</a>`), 'one link to the box in the error summary').toBe(1);
  expect(html).toMatch(new RegExp(`<p class="error-message" id="confirm-error"><span class="visually-hidden">Error: </span>${message}</p>`));
  expect(html).toMatch(/<input type="checkbox" id="confirm"[^>]*aria-describedby="confirm-error"/);
  expect(occurrences(html, message), `"${message}" said once in the summary and once at the box`).toBe(2);
}
