import { describe, expect, it } from 'vitest';
import { describeDuration } from './describeDuration.js';
import { enrolmentCodeExpiredMessage } from '../flows/enrolment/limits.js';
import { EnrolCodePage } from '../flows/enrolment/views.js';
import { renderPage } from './render.js';
import { testConfig } from '../../test/support/app.js';

describe('describeDuration', () => {
  it('says a limit in the unit people read it in', () => {
    expect(describeDuration(60)).toBe('60 seconds');
    expect(describeDuration(1)).toBe('1 second');
    expect(describeDuration(90)).toBe('90 seconds');
    expect(describeDuration(600)).toBe('10 minutes');
    expect(describeDuration(30 * 60)).toBe('30 minutes');
    expect(describeDuration(3600)).toBe('1 hour');
    expect(describeDuration(72 * 3600)).toBe('3 days');
  });

  it('messages follow the configured enrolment code lifetime', () => {
    const config = testConfig({ LATCHKEY_ENROLMENT_CODE_SECONDS: '180' });
    expect(config.enrolmentCodeSeconds).toBe(180);
    expect(enrolmentCodeExpiredMessage(config.enrolmentCodeSeconds)).toBe('This code has expired: codes work for 3 minutes. Ask your agent for a new code.');
    const page = renderPage(<EnrolCodePage config={config} csrfToken="t" values={{ email: '', code: '' }} errors={[]} />);
    expect(page).toContain('Codes work for 3 minutes after they are');
    expect(page).not.toContain('60 seconds');
  });
});
