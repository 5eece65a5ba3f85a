import { describe, expect, it } from 'vitest';
import { canonicalRequestUrl } from './canonicalUrl.js';

describe('canonicalRequestUrl', () => {
  it('gives every spelling of a path one form', () => {
    for (const spelling of ['/admin//users', '//admin/users', '/admin%2Fusers', '/admin%2fusers', '/admin/./users', '/admin/%2E/users', '/admin/users.', '/admin/users/', '/admin/x/../users', '/admin/users/%2e%2e/users']) {
      expect(canonicalRequestUrl(spelling), spelling).toBe('/admin/users');
    }
    expect(canonicalRequestUrl('/admin//users?q=a//b.')).toBe('/admin/users?q=a//b.');
    expect(canonicalRequestUrl('/../..')).toBe('/');
    expect(canonicalRequestUrl('/.')).toBe('/');
  });

  it('leaves ordinary paths, other escapes and non-path targets as they came', () => {
    for (const url of ['/', '/admin/users?status=pending', '/assets/app.css', '/enrol/3q2-abc_DEF', '/%61dmin', '/%2561dmin', '*', 'http://example.com//x']) {
      expect(canonicalRequestUrl(url), url).toBe(url);
    }
  });
});
