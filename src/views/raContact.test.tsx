import { describe, expect, it } from 'vitest';
import { renderToString } from 'preact-render-to-string';
import { RaContact } from './raContact.js';

describe('RaContact', () => {
  it('links to LATCHKEY_RA_CONTACT_URL when it is set', () => {
    expect(renderToString(<RaContact config={{ raContactUrl: 'https://ra.example.org/contact' }} />)).toBe(
      '<a href="https://ra.example.org/contact">your registration authority</a>',
    );
  });

  it('otherwise names who to ask, with no link', () => {
    expect(renderToString(<RaContact config={{ raContactUrl: undefined }} />)).toBe('your organisation’s registration authority or IT service desk');
  });
});
