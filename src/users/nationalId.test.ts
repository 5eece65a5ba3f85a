import { describe, expect, it } from 'vitest';
import { loadConfig, ConfigError } from '../config/index.js';
import { nationalIdFormat, nationalInsuranceNumber } from './nationalId.js';

describe('national identifiers', () => {
  it('normalise and check UK National Insurance numbers by default', () => {
    const f = nationalIdFormat(loadConfig({}));
    expect(f.label).toBe('National Insurance number');
    expect(f.normalise(' ab 12-34 56 c ')).toBe('AB123456C');
    expect(f.check('AB123456C')).toBeUndefined();
    expect(f.check('QQ123456C')).toBeUndefined();
    for (const bad of ['AB123456', 'DA123456C', 'AO123456C', 'GB123456C', 'AB123456E', 'AB12345C']) expect(f.check(bad), bad).toContain('correct format');
    expect(f).toBe(nationalInsuranceNumber);
  });

  it('can be another identifier, described by configuration', () => {
    const f = nationalIdFormat(loadConfig({ LATCHKEY_NATIONAL_ID_LABEL: 'NHS number', LATCHKEY_NATIONAL_ID_PATTERN: '[0-9]{10}', LATCHKEY_NATIONAL_ID_HINT: 'Ten digits' }));
    expect(f.label).toBe('NHS number');
    expect(f.hint).toBe('Ten digits');
    expect(f.check(f.normalise('485 777 3456'))).toBeUndefined();
    expect(f.check('48577734561')).toBe('Enter your NHS number in the correct format');
    expect(() => loadConfig({ LATCHKEY_NATIONAL_ID_PATTERN: '[0-9' })).toThrow(ConfigError);
  });
});
