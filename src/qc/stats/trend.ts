/** Least-squares slope of y over x (x defaults to 0, 1, 2, …); null with fewer than two points or no spread in x. */
export function leastSquaresSlope(ys: number[], xs: number[] = ys.map((_, i) => i)): number | null {
  const n = ys.length;
  if (n < 2) return null;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
  }
  return sxx === 0 ? null : sxy / sxx;
}

/**
 * Annotation times go into fixed log-spaced bins (100 ms to about 2.8 h, 16 per decade), so windows merge
 * by adding counts and a quantile is off by at most one bin width (about 15%).
 */
export const TIME_BIN_COUNT = 80;
const LOG_MIN = 2; // 10^2 ms
const PER_DECADE = 16;

export function timeBin(ms: number): number {
  if (!(ms > 0)) return 0;
  const b = Math.floor((Math.log10(ms) - LOG_MIN) * PER_DECADE);
  return Math.min(TIME_BIN_COUNT - 1, Math.max(0, b));
}

/** The geometric centre of a bin, in ms. */
export function timeBinCentre(bin: number): number {
  return 10 ** (LOG_MIN + (bin + 0.5) / PER_DECADE);
}

/** Quantile q of a binned distribution (the centre of the bin holding it); null when empty. */
export function histogramQuantile(hist: number[], q: number): number | null {
  const total = hist.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const target = q * total;
  let cum = 0;
  for (let i = 0; i < hist.length; i++) {
    cum += hist[i]!;
    if (cum >= target && hist[i]! > 0) return timeBinCentre(i);
  }
  return timeBinCentre(hist.length - 1);
}
