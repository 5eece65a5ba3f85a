/** The few statistics the benchmarks print: quantiles of latencies, means of ratios, medians of paired differences. */

/** The q-quantile (0..1) of a sorted sample, nearest rank. */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** The mean and its standard error (NaN with fewer than two values). */
export function meanAndError(values: number[]): { mean: number; standardError: number } {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  if (values.length < 2) return { mean, standardError: Number.NaN };
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1);
  return { mean, standardError: Math.sqrt(variance / values.length) };
}

/**
 * The median and a 95 % interval for it from order statistics, which assumes nothing about the distribution: the
 * values of ranks j = n/2 − 1.96·√n/2 and k = 1 + n/2 + 1.96·√n/2 (1-based, j rounded down and k up). Below about
 * 10 values no such interval exists: NaN.
 */
export function medianWithInterval(values: number[]): { median: number; low: number; high: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const mid = n >> 1;
  const median = n === 0 ? NaN : n % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  const half = (1.96 * Math.sqrt(n)) / 2;
  const j = Math.floor(n / 2 - half);
  const k = Math.ceil(1 + n / 2 + half);
  if (j < 1 || k > n) return { median, low: NaN, high: NaN };
  return { median, low: sorted[j - 1]!, high: sorted[k - 1]! };
}
