/**
 * A limit's duration in words for messages ("60 seconds", "10 minutes", "1 hour"), so a message that states a
 * limit is built from the value that enforces it and follows it when the limit changes.
 * Under two minutes stays in seconds (a 60-second code is read against a countdown in seconds);
 * otherwise the largest unit that divides the duration exactly.
 */
export function describeDuration(seconds: number): string {
  const count = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;
  if (seconds < 120 || seconds % 60 !== 0) return count(seconds, 'second');
  if (seconds % 86_400 === 0) return count(seconds / 86_400, 'day');
  if (seconds % 3600 === 0) return count(seconds / 3600, 'hour');
  return count(seconds / 60, 'minute');
}
