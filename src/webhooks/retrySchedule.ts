/**
 * The retry schedule (config.webhookRetrySeconds) in words, for the console and the paused notice, so what people
 * read follows the setting.
 */
import { describeDuration } from '../views/describeDuration.js';

/** The whole span, rounded: "about 28 hours". */
export function describeRetrySpan(schedule: readonly number[]): string {
  const total = schedule.reduce((a, b) => a + b, 0);
  if (total >= 7200) return `about ${Math.round(total / 3600)} hours`;
  if (total >= 120) return `about ${Math.round(total / 60)} minutes`;
  return `${total} second${total === 1 ? '' : 's'}`;
}

/** "8 attempts: immediately, then 5 seconds, 5 minutes … after the one before (about 28 hours in all)". */
export function describeRetrySchedule(schedule: readonly number[]): string {
  const [first = 0, ...rest] = schedule;
  const start = first === 0 ? 'immediately' : `after ${describeDuration(first)}`;
  const then = rest.length ? `, then ${rest.map(describeDuration).join(', ')} after the one before` : '';
  const span = schedule.some((s) => s > 0) ? ` (${describeRetrySpan(schedule)} in all)` : '';
  return `${schedule.length} attempt${schedule.length === 1 ? '' : 's'}: ${start}${then}${span}`;
}
