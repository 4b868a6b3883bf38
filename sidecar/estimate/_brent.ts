/**
 * Brent–Dekker root finding on a bracket (inverse quadratic interpolation, secant, bisection),
 * for thresholds without a linear pencil (momentum.md §6).
 *
 * @module
 */

/** Result of {@linkcode brentRoot}. */
export interface BrentResult {
  /** The root estimate (the end of the final bracket with the smaller `|f|`). */
  x: number;
  /** Function evaluations, the two end points included. */
  evaluations: number;
  /** Final bracket width ≤ tolerance. */
  converged: boolean;
}

/**
 * A root of `f` in `[lo, hi]` where `f(lo)` and `f(hi)` have opposite signs (or one is 0).
 * @param f continuous function
 * @param lo left end
 * @param hi right end
 * @param options `xtol` relative tolerance on `x` (default 1e-14), `maxIter` (default 100), and the
 *   already known values `flo`, `fhi`
 * @throws {RangeError} when the ends do not bracket a root
 */
export function brentRoot(
  f: (x: number) => number,
  lo: number,
  hi: number,
  options: { xtol?: number; maxIter?: number; flo?: number; fhi?: number } = {},
): BrentResult {
  const xtol = options.xtol ?? 1e-14;
  let a = lo, b = hi;
  let fa = options.flo ?? f(a), fb = options.fhi ?? f(b);
  let evaluations = 2;
  if (fa === 0) return { x: a, evaluations, converged: true };
  if (fb === 0) return { x: b, evaluations, converged: true };
  if (Math.sign(fa) === Math.sign(fb) || !Number.isFinite(fa + fb)) {
    throw new RangeError(
      `Expected a bracket with a sign change, got f(${lo}) = ${fa} and f(${hi}) = ${fb}`,
    );
  }
  let c = a, fc = fa, d = b - a, e = d;
  for (let it = 0; it < (options.maxIter ?? 100); it++) {
    if (Math.sign(fb) === Math.sign(fc)) {
      c = a;
      fc = fa;
      d = e = b - a;
    }
    if (Math.abs(fc) < Math.abs(fb)) {
      [a, b, c] = [b, c, b];
      [fa, fb, fc] = [fb, fc, fb];
    }
    const tol = 2 * Number.EPSILON * Math.abs(b) + 0.5 * xtol * Math.abs(b);
    const m = 0.5 * (c - b);
    if (Math.abs(m) <= tol || fb === 0) {
      return { x: b, evaluations, converged: true };
    }
    if (Math.abs(e) >= tol && Math.abs(fa) > Math.abs(fb)) {
      const s = fb / fa;
      let p: number, q: number;
      if (a === c) {
        p = 2 * m * s;
        q = 1 - s;
      } else {
        const qq = fa / fc, r = fb / fc;
        p = s * (2 * m * qq * (qq - r) - (b - a) * (r - 1));
        q = (qq - 1) * (r - 1) * (s - 1);
      }
      if (p > 0) q = -q;
      else p = -p;
      if (2 * p < Math.min(3 * m * q - Math.abs(tol * q), Math.abs(e * q))) {
        e = d;
        d = p / q;
      } else {
        d = m;
        e = m;
      }
    } else {
      d = m;
      e = m;
    }
    a = b;
    fa = fb;
    b += Math.abs(d) > tol ? d : (m > 0 ? tol : -tol);
    fb = f(b);
    evaluations++;
  }
  return { x: b, evaluations, converged: false };
}
